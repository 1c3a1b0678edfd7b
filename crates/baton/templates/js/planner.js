// `{{name}}`: a planner that calls one tool with the run's input and finishes with its output
// (or, given no tools, finishes with the task).
//
// Change `next` to make it yours: it is asked again after every step, with the results so far.

const CONFIG_SCHEMA = {
  type: ["object", "null"],
  properties: { tool: { type: "string", description: "The tool to call (default: the first)" } },
  additionalProperties: false,
};

export const plannerApi = {
  describe() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      description: "Calls one tool with the run's input and finishes with its output.",
      configSchema: JSON.stringify(CONFIG_SCHEMA),
    };
  },

  next(state) {
    const config = JSON.parse(state.config);
    if (config !== null && typeof config !== "object") {
      return { tag: "fail", val: "the planner's config must be a table" };
    }
    const last = state.results.at(-1);
    if (last) {
      if (last.output.tag === "err") {
        // A tool-error: invalid-input or failed with a message, or host with an error.
        const error = last.output.val;
        const message = typeof error.val === "string" ? error.val : error.val.val;
        return { tag: "fail", val: message };
      }
      return { tag: "finish", val: last.output.val };
    }
    const names = state.tools.map((tool) => tool.name);
    const tool = config?.tool;
    if (tool !== undefined && !names.includes(tool)) {
      return { tag: "fail", val: `config.tool names '${tool}', which is not given` };
    }
    if (tool === undefined && names.length === 0) {
      return { tag: "finish", val: JSON.stringify({ task: state.task }) };
    }
    const step = { id: "call", tool: tool ?? names[0], input: state.input, dependsOn: [], replicates: 1 };
    return { tag: "call", val: [step] };
  },
};
