// `{{name}}`: a tool that greets someone by name.
//
// Change `describe` and `invoke` to make it yours. Baton checks every input against
// INPUT_SCHEMA before `invoke` runs, and every output against OUTPUT_SCHEMA after.

const INPUT_SCHEMA = {
  type: "object",
  properties: { name: { type: "string", minLength: 1, maxLength: 100 } },
  required: ["name"],
  additionalProperties: false,
};

const OUTPUT_SCHEMA = {
  type: "object",
  properties: { greeting: { type: "string" } },
  required: ["greeting"],
  additionalProperties: false,
};

export const toolApi = {
  describe() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      description: "Greets someone by name.",
      inputSchema: JSON.stringify(INPUT_SCHEMA),
      outputSchema: JSON.stringify(OUTPUT_SCHEMA),
    };
  },

  invoke(input) {
    const name = JSON.parse(input).name.trim();
    // What a schema cannot say, the tool checks itself. A thrown `{tag, val}` is the
    // `tool-error` the host reports.
    if (!name) {
      throw { tag: "invalid-input", val: "name must not be blank" };
    }
    return JSON.stringify({ greeting: `Hello, ${name}!` });
  },
};
