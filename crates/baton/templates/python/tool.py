"""`{{name}}`: a tool that greets someone by name.

Change `describe` and `invoke` to make it yours. Baton checks every input against
INPUT_SCHEMA before `invoke` runs, and every output against OUTPUT_SCHEMA after.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}},
    "required": ["name"],
    "additionalProperties": False,
}

OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {"greeting": {"type": "string"}},
    "required": ["greeting"],
    "additionalProperties": False,
}


class ToolApi(exports.ToolApi):
    def describe(self) -> types.ToolInfo:
        return types.ToolInfo(
            name="{{name}}",
            version="0.1.0",
            description="Greets someone by name.",
            input_schema=json.dumps(INPUT_SCHEMA),
            output_schema=json.dumps(OUTPUT_SCHEMA),
        )

    def invoke(self, input: str) -> str:
        name = json.loads(input)["name"].strip()
        # What a schema cannot say, the tool checks itself.
        if not name:
            raise Err(types.ToolError_InvalidInput("name must not be blank"))
        return json.dumps({"greeting": f"Hello, {name}!"})
