"""An MCP client Baton did not write: the official Python SDK (`mcp` on PyPI), driving
`baton mcp` the way an agent does.

    python3 client.py --stdio BATON TOOLS_DIR [--discover] CALLS_JSON
    python3 client.py --http URL [--key KEY] [--discover] CALLS_JSON

Over stdio it starts `BATON mcp --tools TOOLS_DIR`; over HTTP it connects to URL. The
handshake is `initialize` (the legacy one) unless --discover (the newest protocol).
CALLS_JSON is a list of [tool, arguments] or [tool, arguments, "cancel"]: a call to cancel
(by cancelling its task, which sends `notifications/cancelled`) once the server reports its
progress. Prints one JSON document: the negotiated version, the tools listed, and each
call's result (for a cancelled call, the progress it heard).
"""

import argparse
import asyncio
import json
import os

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

# The SDK starts servers with a minimal environment; Baton's settings are passed on.
PASSED = ("BATON_STORE", "BATON_CACHE_DIR", "BATON_MODELS", "PATH", "HOME")


def transport(args):
    if args.stdio:
        baton, tools = args.stdio
        env = {name: os.environ[name] for name in PASSED if name in os.environ}
        server = StdioServerParameters(command=baton, args=["mcp", "--tools", tools], env=env)
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


async def main(args):
    async with transport(args) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            if args.discover:
                await session.discover()
            else:
                await session.initialize()
            listed = await session.list_tools()
            results = []
            for name, arguments, *cancel in json.loads(args.calls):
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
parser.add_argument("--http", metavar="URL")
parser.add_argument("--key")
parser.add_argument("--discover", action="store_true")
parser.add_argument("calls")
asyncio.run(main(parser.parse_args()))
