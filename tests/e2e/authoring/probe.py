"""A Python tool that tries, from inside Baton's sandbox, to read a file outside its grant,
read an environment variable it was not granted, open a socket and look up a name."""

import json
import os
import socket

from wit_world import exports
from wit_world.imports import types


def attempt(action):
    try:
        return {"ok": action()}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def read(path):
    with open(path) as f:
        return f.read()


class ToolApi(exports.ToolApi):
    def describe(self) -> types.ToolInfo:
        return types.ToolInfo(
            name="probe",
            version="0.1.0",
            description="Tries to reach what it was not granted.",
            input_schema='{"type": "object", "required": ["port", "outside"]}',
            output_schema='{"type": "object"}',
        )

    def invoke(self, input: str) -> str:
        doc = json.loads(input)

        def connect():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect(("127.0.0.1", doc["port"]))
            return "connected"

        return json.dumps({
            "inside": attempt(lambda: read("/data/inside.txt")),
            "escape": attempt(lambda: read("/data/../outside.txt")),
            "absolute": attempt(lambda: read(doc["outside"])),
            "env": dict(os.environ),
            "socket": attempt(connect),
            "lookup": attempt(lambda: str(socket.getaddrinfo("localhost", doc["port"]))),
        })
