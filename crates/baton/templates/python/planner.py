"""`{{name}}`: a planner that calls one tool with the run's input and finishes with its
output (or, given no tools, finishes with the task).

Change `next` to make it yours: it is asked again after every step, with the results so far.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

CONFIG_SCHEMA = {
    "type": ["object", "null"],
    "properties": {"tool": {"type": "string", "description": "The tool to call (default: the first)"}},
    "additionalProperties": False,
}


class PlannerApi(exports.PlannerApi):
    def describe(self) -> types.PlannerInfo:
        return types.PlannerInfo(
            name="{{name}}",
            version="0.1.0",
            description="Calls one tool with the run's input and finishes with its output.",
            config_schema=json.dumps(CONFIG_SCHEMA),
        )

    def next(self, state: types.RunState) -> types.Decision:
        config = json.loads(state.config)
        if config is not None and not isinstance(config, dict):
            return types.Decision_Fail("the planner's config must be a table")
        if state.results:
            last = state.results[-1]
            if isinstance(last.output, Err):
                # A ToolError: invalid input or failed with a message, or a host error.
                error = last.output.value
                message = error.value if isinstance(error.value, str) else error.value.value
                return types.Decision_Fail(message)
            return types.Decision_Finish(last.output.value)
        names = [tool.name for tool in state.tools]
        tool = (config or {}).get("tool")
        if tool is not None and tool not in names:
            return types.Decision_Fail(f"config.tool names '{tool}', which is not given")
        if tool is None and not names:
            return types.Decision_Finish(json.dumps({"task": state.task}))
        step = types.Step(id="call", tool=tool or names[0], input=state.input, depends_on=[],
                          replicates=1)
        return types.Decision_Call([step])
