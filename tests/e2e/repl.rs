//! `baton repl` through a pseudo-terminal, as a person uses it: the session is driven by
//! Python's `pty` module, which types each line and waits for what the shell prints back.

use std::process::Command;

use serde_json::json;

use crate::common::*;

/// Types each step's line (`\t` is the Tab key) into `argv` run on a pseudo-terminal and waits
/// up to a minute for the step's text to follow it, then for the next prompt; then Ctrl-D. Prints the whole transcript,
/// then the exit status.
const DRIVER: &str = r#"
import json, os, pty, select, sys, time
argv, steps = json.loads(sys.argv[1]), json.loads(sys.argv[2])
PROMPT = "baton> "
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
transcript = b""
def read(wanted, start):
    """Reads until `wanted` follows `start` (None: until the shell ends); returns where."""
    global transcript
    deadline = time.time() + 60
    while wanted is None or wanted.encode() not in transcript[start:]:
        left = deadline - time.time()
        if left <= 0:
            sys.stdout.write(transcript.decode(errors="replace"))
            sys.exit("never saw " + repr(wanted or "the end"))
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk and wanted is None:
                return len(transcript)
            if not chunk:
                sys.stdout.write(transcript.decode(errors="replace"))
                sys.exit("the shell ended before printing " + repr(wanted))
            transcript += chunk
    return transcript.index(wanted.encode(), start) + len(wanted)
# Each line is typed at a prompt: input typed before the line editor takes the terminal
# again may be discarded when it does.
read(PROMPT, 0)
for line, wanted in steps:
    start = len(transcript)
    os.write(fd, line.encode())
    read(PROMPT, read(wanted, start))
os.write(fd, b"\x04")
read(None, len(transcript))
_, status = os.waitpid(pid, 0)
sys.stdout.write(transcript.decode(errors="replace"))
print("\nexit", os.waitstatus_to_exitcode(status))
"#;

#[test]
fn a_session_calls_tools_hits_a_limit_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    for name in ["calc.wasm", "testing/spin.wasm"] {
        copy_plugin(name, &tools);
    }
    let policy = write_policy(dir.path(), "[plugins.spin.limits]\nfuel = 1_000_000\n");
    let history = dir.path().join("history");
    let store = dir.path().join("journal.db");
    let baton = baton();
    let argv = json!([
        env!("CARGO_BIN_EXE_baton"),
        "--policy",
        policy,
        "--store",
        store,
        "repl",
        "--tools",
        tools,
        "--history",
        history,
    ]);
    let steps = json!([
        ["tools\r", "Evaluates an arithmetic expression"],
        ["call calc {\"expression\": \"6 * 7\"}\r", "42.0"],
        // A hostile tool ends its call, not the session.
        ["call spin {}\r", "ran out of fuel after 1000000 units"],
        ["call calc {\"expression\": \"1 + 1\"}\r", "2.0"],
        // Tab completes the command and the tool's name.
        ["insp\tca\t\r", "world        tool"],
        [
            "call nothing {}\r",
            "no tool named 'nothing'; `tools` lists them"
        ],
        ["bogus\r", "unrecognized subcommand"],
        ["trace ls\r", "call  ok"],
        [
            "budget\r",
            "this session: 3 runs, 0 LLM calls, 0 tokens, $0.00"
        ],
    ]);
    let mut driver = Command::new("python3");
    driver
        .args(["-c", DRIVER])
        .arg(argv.to_string())
        .arg(steps.to_string());
    for (key, value) in baton.get_envs() {
        match value {
            Some(value) => driver.env(key, value),
            None => driver.env_remove(key),
        };
    }
    let out = driver.output().unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{transcript}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(transcript.trim_end().ends_with("exit 0"), "{transcript}");
    // The calls were journaled as `baton call` journals them: three runs.
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    assert_eq!(
        listed.lines().filter(|l| l.contains(" call ")).count(),
        3,
        "{listed}"
    );
    let kept = std::fs::read_to_string(&history).unwrap();
    assert_contains(&kept, &["tools", "call spin {}", "inspect calc"]);
}
