// `{{name}}`: a prompt that asks a model to answer a question briefly.
//
// Change `describe` and `render` to make it yours; `render` must keep its messages within
// `budget`.

const VARS_SCHEMA = {
  type: "object",
  properties: { question: { type: "string", minLength: 1 } },
  required: ["question"],
  additionalProperties: false,
};

export const promptApi = {
  describe() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      description: "Asks a model to answer a question in one or two sentences.",
      varsSchema: JSON.stringify(VARS_SCHEMA),
    };
  },

  render(vars, budget) {
    const question = (JSON.parse(vars).question ?? "").trim();
    if (!question) {
      throw { tag: "invalid-argument", val: "question must not be blank" };
    }
    // About four characters a token: a cheap check that needs no tokenizer.
    if (Math.floor(question.length / 4) > budget.maxTokens) {
      throw { tag: "invalid-argument", val: `the question does not fit in ${budget.maxTokens} tokens` };
    }
    return [
      { role: "system", content: "Answer in one or two sentences." },
      { role: "user", content: question },
    ];
  },
};
