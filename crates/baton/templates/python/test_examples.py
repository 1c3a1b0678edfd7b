"""Runs the examples in examples.json through Baton: `baton --policy policy.toml ARGS...`
must end with the status each names, printing what it expects.

Build and sign the component first (see README.md), then: python3 -m unittest
Set BATON to use a `baton` that is not on PATH.
"""

import json
import os
import subprocess
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Examples(unittest.TestCase):
    def test_examples_run_through_baton(self):
        baton = os.environ.get("BATON", "baton")
        for example in json.loads((HERE / "examples.json").read_text()):
            with self.subTest(example["about"]):
                done = subprocess.run(
                    [baton, "--policy", "policy.toml", *example["args"]],
                    cwd=HERE, capture_output=True, text=True)
                detail = f"stdout {done.stdout!r} stderr {done.stderr!r}"
                self.assertEqual(done.returncode, example["status"], detail)
                self.assertIn(example.get("stdout", ""), done.stdout, detail)
                self.assertIn(example.get("stderr", ""), done.stderr, detail)


if __name__ == "__main__":
    unittest.main()
