"""Drives `baton serve` with clients Baton did not write: OpenAI's Python SDK (the gateway)
and prometheus_client's parser (the metrics). Prints one JSON result per action.

usage: client.py BASE_URL API_KEY ACTIONS_JSON
"""

import json
import sys
import urllib.request

import openai
from prometheus_client.parser import text_string_to_metric_families


def chat(client, action):
    kwargs = {
        "model": action["model"],
        "messages": action["messages"],
        "temperature": action.get("temperature", 0),
    }
    if "max_tokens" in action:
        kwargs["max_tokens"] = action["max_tokens"]
    if not action.get("stream"):
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        done = raw.parse()
        return {
            "text": done.choices[0].message.content,
            "finish_reason": done.choices[0].finish_reason,
            "usage": done.usage.model_dump(),
            "cache": raw.headers.get("x-baton-cache"),
            "run": raw.headers.get("x-baton-run"),
        }
    kwargs["stream"] = True
    if action.get("include_usage"):
        kwargs["stream_options"] = {"include_usage": True}
    with client.chat.completions.with_streaming_response.create(**kwargs) as raw:
        text, usage, finish, chunks = "", None, None, 0
        for chunk in raw.parse():
            chunks += 1
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
        return {
            "text": text,
            "finish_reason": finish,
            "usage": usage,
            "chunks": chunks,
            "cache": raw.headers.get("x-baton-cache"),
            "run": raw.headers.get("x-baton-run"),
        }


def embed(client, action):
    raw = client.embeddings.with_raw_response.create(
        model=action["model"], input=action["input"]
    )
    done = raw.parse()
    return {
        "count": len(done.data),
        "dims": len(done.data[0].embedding),
        "norm": sum(x * x for x in done.data[0].embedding),
        "usage": done.usage.model_dump(),
        "run": raw.headers.get("x-baton-run"),
    }


def metrics(base_url):
    root = base_url.rsplit("/v1", 1)[0]
    text = urllib.request.urlopen(root + "/metrics").read().decode()
    samples = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.append(
                {
                    "family": family.name,
                    "type": family.type,
                    "name": sample.name,
                    "labels": sample.labels,
                    "value": sample.value,
                }
            )
    return samples


def main():
    base_url, key, actions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    results = []
    for action in actions:
        try:
            if action["do"] == "chat":
                results.append(chat(client, action))
            elif action["do"] == "embed":
                results.append(embed(client, action))
            elif action["do"] == "models":
                results.append(sorted(m.id for m in client.models.list()))
            elif action["do"] == "metrics":
                results.append(metrics(base_url))
        except openai.APIStatusError as e:
            results.append({"status": e.status_code, "error": e.body})
    print(json.dumps(results))


main()
