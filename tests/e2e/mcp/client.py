"""An MCP client Baton did not write: the official Python SDK (`mcp` on PyPI), driving
`baton mcp` over stdio the way an agent does.

    python3 client.py BATON HANDSHAKE TOOLS_DIR CALLS_JSON

HANDSHAKE is `initialize` (the legacy handshake) or `discover` (the newest protocol).
CALLS_JSON is a list of [tool, arguments]. Prints one JSON document: the negotiated
version, the tools listed, and each call's result.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

# The SDK starts servers with a minimal environment; Baton's settings are passed on.
PASSED = ("BATON_STORE", "BATON_CACHE_DIR", "BATON_MODELS", "PATH", "HOME")


async def main(baton, handshake, tools, calls):
    env = {name: os.environ[name] for name in PASSED if name in os.environ}
    server = StdioServerParameters(command=baton, args=["mcp", "--tools", tools], env=env)
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            if handshake == "discover":
                await session.discover()
            else:
                await session.initialize()
            listed = await session.list_tools()
            results = []
            for name, arguments in calls:
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


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
