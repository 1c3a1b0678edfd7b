// Runs the examples in examples.json through Baton: `baton --policy policy.toml ARGS...` must
// end with the status each names, printing what it expects.
//
// Build and sign the component first (see README.md), then: npm test
// Set BATON to use a `baton` that is not on PATH.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import assert from "node:assert/strict";

const here = new URL(".", import.meta.url).pathname;
const examples = JSON.parse(readFileSync(new URL("examples.json", import.meta.url), "utf8"));
const baton = process.env.BATON ?? "baton";

for (const example of examples) {
  test(example.about, () => {
    const done = spawnSync(baton, ["--policy", "policy.toml", ...example.args], {
      cwd: here,
      encoding: "utf8",
    });
    assert.ifError(done.error);
    const detail = `stdout ${done.stdout} stderr ${done.stderr}`;
    assert.equal(done.status, example.status, detail);
    assert.ok(done.stdout.includes(example.stdout ?? ""), detail);
    assert.ok(done.stderr.includes(example.stderr ?? ""), detail);
  });
}
