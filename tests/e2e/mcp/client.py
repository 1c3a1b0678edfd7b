"""An MCP client Baton did not write: the official Python SDK (`mcp` on PyPI), driving
`baton mcp` the way an agent does.

    python3 client.py --stdio BATON TOOLS_DIR [--server-arg ARG]... [--discover] CALLS_JSON
    python3 client.py --http URL [--key KEY] [--discover] CALLS_JSON

Over stdio it starts `BATON mcp --tools TOOLS_DIR`; over HTTP it connects to URL. The
handshake is `initialize` (the legacy one) unless --discover (the newest protocol).
CALLS_JSON is a list of steps, each one of
- [tool, arguments]: a call;
- [tool, arguments, "cancel"]: a call to cancel (by cancelling its task, which sends
  `notifications/cancelled`) once the server reports its progress;
- "list": the names of the tools listed now;
- {"copy": [FROM, TO]}: a component copied into place, its sidecars first;
- {"remove": PATH}: a file removed;
- "await-change": wait for `notifications/tools/list_changed`;
- "prompts": the prompts listed now;
- {"prompt": [name, arguments]}: a prompt got, its messages (or the error).
Prints one JSON document: the negotiated version, the tools listed first, and each step's
result (for a cancelled call, the progress it heard).
"""

import argparse
import asyncio
import json
import os
import shutil

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

# The SDK starts servers with a minimal environment; Baton's settings are passed on.
PASSED = (
    "BATON_STORE", "BATON_CACHE_DIR", "BATON_MODELS", "BATON_POLICY", "PATH", "HOME"
)


def transport(args):
    if args.stdio:
        baton, tools = args.stdio
        env = {name: os.environ[name] for name in PASSED if name in os.environ}
        arguments = ["mcp", "--tools", tools, *(args.server_arg or [])]
        server = StdioServerParameters(command=baton, args=arguments, env=env)
        return stdio_client(server)
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    return streamable_http_client(args.http, http_client=httpx2.AsyncClient(headers=headers))


async def cancelled_call(session, name, arguments):
    """Calls `name` and cancels the call once the server says it is still running."""
    heard = []
    with anyio.CancelScope() as scope:
        async def progress(progress, total, message):
            heard.append({"progress": progress, "message": message})
            scope.cancel()

        await session.call_tool(name, arguments, progress_callback=progress)
    return {"cancelled": scope.cancelled_caught, "progress": heard}


class Changes:
    """The `notifications/tools/list_changed` heard and not yet awaited."""

    def __init__(self):
        self.event = anyio.Event()

    async def heard(self, message):
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            self.event.set()

    async def next(self):
        with anyio.fail_after(60):
            await self.event.wait()
        self.event = anyio.Event()


async def act(session, step, changed):
    """A step that is not a call: see the module's docs."""
    if step == "list":
        return {"listed": [tool.name for tool in (await session.list_tools()).tools]}
    if step == "prompts":
        listed = await session.list_prompts()
        return {"prompts": [p.model_dump(exclude_none=True) for p in listed.prompts]}
    if "prompt" in step:
        name, arguments = step["prompt"]
        try:
            got = await session.get_prompt(name, arguments)
        except Exception as error:  # the SDK raises the server's JSON-RPC error
            return {"error": str(error)}
        return {"messages": [{"role": m.role, "text": m.content.text} for m in got.messages]}
    if step == "await-change":
        await changed.next()
        return {"changed": True}
    if "copy" in step:
        source, target = step["copy"]
        for suffix in (".sig", ".intoto.json"):
            if os.path.exists(source + suffix):
                shutil.copy(source + suffix, target + suffix)
        # The component appears whole, as a deployment would put it in place.
        shutil.copy(source, target + ".part")
        os.replace(target + ".part", target)
        return {"copied": target}
    os.remove(step["remove"])
    return {"removed": step["remove"]}


async def main(args):
    async with transport(args) as streams:
        read, write = streams[0], streams[1]
        changed = Changes()
        async with ClientSession(read, write, message_handler=changed.heard) as session:
            if args.discover:
                await session.discover()
            else:
                await session.initialize()
            listed = await session.list_tools()
            results = []
            for step in json.loads(args.calls):
                if not isinstance(step, list):
                    results.append(await act(session, step, changed))
                    continue
                name, arguments, *cancel = step
                if cancel:
                    results.append(await cancelled_call(session, name, arguments))
                    continue
                result = await session.call_tool(name, arguments)
                results.append({
                    "structured": result.structured_content,
                    "is_error": bool(result.is_error),
                    "text": [block.text for block in result.content],
                })
            print(json.dumps({
                "version": session.protocol_version,
                "tools": [tool.model_dump(by_alias=True, exclude_none=True) for tool in listed.tools],
                "calls": results,
            }))


parser = argparse.ArgumentParser()
parser.add_argument("--stdio", nargs=2, metavar=("BATON", "TOOLS_DIR"))
parser.add_argument("--server-arg", action="append", help="a further argument of `baton mcp`")
parser.add_argument("--http", metavar="URL")
parser.add_argument("--key")
parser.add_argument("--discover", action="store_true")
parser.add_argument("calls")
asyncio.run(main(parser.parse_args()))
