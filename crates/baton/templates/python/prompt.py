"""`{{name}}`: a prompt that asks a model to answer a question briefly.

Change `describe` and `render` to make it yours; `render` must keep its messages within
`budget`.
"""

import json
from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

VARS_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string", "minLength": 1}},
    "required": ["question"],
    "additionalProperties": False,
}


class PromptApi(exports.PromptApi):
    def describe(self) -> types.PromptInfo:
        return types.PromptInfo(
            name="{{name}}",
            version="0.1.0",
            description="Asks a model to answer a question in one or two sentences.",
            vars_schema=json.dumps(VARS_SCHEMA),
        )

    def render(self, vars: str, budget: types.TokenBudget) -> List[types.Message]:
        question = json.loads(vars).get("question", "").strip()
        if not question:
            raise Err(types.Error_InvalidArgument("question must not be blank"))
        # About four characters a token: a cheap check that needs no tokenizer.
        if len(question) // 4 > budget.max_tokens:
            raise Err(types.Error_InvalidArgument(
                f"the question does not fit in {budget.max_tokens} tokens"))
        return [
            types.Message(types.Role.SYSTEM, "Answer in one or two sentences."),
            types.Message(types.Role.USER, question),
        ]
