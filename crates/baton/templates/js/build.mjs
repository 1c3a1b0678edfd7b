// Builds {{name}}.js into the component {{name}}.wasm, of the world baton:plugin/{{kind}}
// (`baton build` runs this).
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";

const { component } = await componentize({
  sourcePath: "{{name}}.js",
  witPath: "wit",
  worldName: "baton:plugin/{{kind}}",
});
await writeFile("{{name}}.wasm", component);
