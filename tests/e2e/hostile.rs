//! Each hostile plugin is contained with a typed error, the right exit status and one line
//! that says what happened and what to do.

use crate::common::*;

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let line = error_line(&call("testing/spin.wasm", "{}", &[]), 3);
    assert_eq!(
        line,
        "error: tool 'spin' ran out of fuel after 1000000000 units (limit from \
         policies/default.toml; raise it with --fuel)"
    );
}

#[test]
fn an_infinite_loop_with_ample_fuel_hits_its_deadline() {
    let out = call(
        "testing/spin.wasm",
        "{}",
        &["--fuel", "1_000_000_000_000", "--timeout", "300ms"],
    );
    let line = error_line(&out, 3);
    assert_eq!(
        line,
        "error: tool 'spin' did not finish within its 300ms deadline (limit from the command \
         line; raise it with --timeout)"
    );
}

#[test]
fn a_call_blocked_in_the_host_still_hits_its_deadline() {
    let line = error_line(
        &call("testing/sleeper.wasm", "{}", &["--timeout", "500ms"]),
        3,
    );
    assert_contains(
        &line,
        &["tool 'sleeper' did not finish within its 500ms deadline"],
    );
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let line = error_line(&call("testing/memory-bomb.wasm", "{}", &[]), 3);
    assert_contains(
        &line,
        &[
            "tool 'memory-bomb' hit its memory limit of 64 MiB when growing to ",
            "(limit from policies/default.toml; raise it with --memory)",
        ],
    );
}

#[test]
fn a_smaller_memory_limit_is_enforced() {
    let line = error_line(
        &call("testing/memory-bomb.wasm", "{}", &["--memory", "4 MiB"]),
        3,
    );
    assert_contains(
        &line,
        &["hit its memory limit of 4 MiB", "the command line"],
    );
}

#[test]
fn unbounded_recursion_exhausts_the_stack() {
    let line = error_line(&call("testing/recursion.wasm", "{}", &[]), 3);
    assert_contains(&line, &["tool 'recursion' exhausted its call stack"]);
}

#[test]
fn an_output_flood_is_too_large() {
    let line = error_line(&call("testing/output-flood.wasm", "{}", &[]), 3);
    assert_eq!(
        line,
        "error: tool 'output-flood' produced more than 1 MiB of output (limit from \
         policies/default.toml; raise it with --max-output)"
    );
}

#[test]
fn a_panic_is_a_crash_with_the_panic_message() {
    let line = error_line(&call("testing/panic.wasm", "{}", &[]), 1);
    assert_contains(
        &line,
        &[
            "tool 'panic' crashed: wasm trap: ",
            "deliberate panic in a hostile tool",
            "this is a bug in the component",
        ],
    );
}

#[test]
fn output_that_is_not_json_is_a_tool_failure() {
    let line = error_line(&call("testing/bad-json.wasm", "{}", &[]), 1);
    assert_contains(&line, &["tool 'bad-json' returned output that is not JSON"]);
}

#[test]
fn output_that_violates_the_schema_is_a_tool_failure() {
    let line = error_line(&call("testing/schema-violation.wasm", "{}", &[]), 1);
    assert_contains(
        &line,
        &[
            "tool 'schema-violation' broke its own contract: output does not match the output \
             schema at /value",
        ],
    );
}

#[test]
fn a_forbidden_import_is_refused_before_running_and_named() {
    let line = error_line(&call("testing/forbidden-import.wasm", "{}", &[]), 2);
    assert_contains(
        &line,
        &[
            "forbidden-import.wasm cannot be used as a Baton plugin: it imports 'testing:forbidden/shell'",
        ],
    );
}

/// Escape sequences in a tool's error and stderr reach the terminal shown, never obeyed:
/// no clipboard write (OSC 52), no window title, no carriage return overwriting the line.
#[test]
fn terminal_escapes_in_guest_text_are_shown_escaped() {
    let tool = plugin("testing/terminal-escapes.wasm");
    for verbose in [&[][..], &["-v"]] {
        let out = run(&[
            &["call", tool.to_str().unwrap(), "--input", "{}"][..],
            verbose,
        ]
        .concat());
        assert_eq!(out.status.code(), Some(1));
        let stderr = &out.stderr;
        for byte in [0x1b_u8, 0x07, b'\r'] {
            assert!(
                !stderr.contains(&byte),
                "raw control byte {byte:#x} on stderr: {}",
                String::from_utf8_lossy(stderr)
            );
        }
        assert_contains(&String::from_utf8_lossy(stderr), &["\\u{1b}"]);
    }
}

/// A random-bytes flood: a draw is one journal event however long it is, and a draw larger
/// than 64 KiB stops the call instead of filling memory and the journal.
#[test]
fn a_random_bytes_flood_is_one_event_per_draw_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let tool = plugin("testing/random-flood.wasm");
    let out = run_with_store(&store, &["call", tool.to_str().unwrap(), "--input", "{}"]);
    let line = error_line(&out, 1);
    assert_contains(
        &line,
        &["asked for 1048576 random bytes at once, more than the 65536 a draw may have"],
    );
    let db = rusqlite::Connection::open(&store).unwrap();
    let sizes: Vec<i64> = db
        .prepare("SELECT length(body) FROM events WHERE kind = 'random'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // The 64 KiB draw is one event (its bytes in hex), not one per byte.
    assert_eq!(
        sizes.iter().filter(|&&size| size > 128 * 1024).count(),
        1,
        "{sizes:?}"
    );
    assert!(sizes.len() < 16, "{} random events", sizes.len());
}

/// Holding host resources without end runs into a host limit (exit 3), said as such, rather
/// than being called a bug in the component.
#[test]
fn a_handle_flood_is_a_host_limit() {
    let tool = plugin("testing/handle-flood.wasm");
    let out = run(&["call", tool.to_str().unwrap(), "--input", "{}"]);
    let line = error_line(&out, 3);
    assert_contains(
        &line,
        &[
            "tool 'handle-flood' held more than 4096 host resources",
            "this host limit is fixed",
        ],
    );
    assert!(!line.contains("bug in the component"), "{line}");
}

/// Parallel or repeated large responses cannot grow one run's journal without bound: past
/// `[journal] max_bytes`, an answer is refused as a full journal (the tool sees its response
/// as too large), the refusal is journaled and reported, and the run replays exactly.
#[test]
fn a_run_records_no_more_than_its_journal_allowance() {
    let server = crate::server::Server::start();
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    copy_plugin("fetch.wasm", &tools);
    // Each response is 64 KiB; the first, with the outputs that carry it on, takes most of
    // 200 KiB.
    let fetch = serde_json::json!({"tool": "fetch", "input": {"url": server.url("/big")}});
    let input = serde_json::json!({"calls": [fetch, fetch, fetch]}).to_string();
    let fetch_three_times = |max_bytes: &str| {
        let policy = write_policy(
            dir.path(),
            &format!(
                "[journal]\nmax_bytes = \"{max_bytes}\"\n\n[plugins.caller.tools]\n\
                 call = [\"fetch\"]\n\n[plugins.fetch.net]\nallow = [\"http://127.0.0.1:{}\"]\n",
                server.port
            ),
        );
        let bundle = dir.path().join(format!("{max_bytes}.bundle"));
        let out = run(&[
            "call",
            plugin("testing/caller.wasm").to_str().unwrap(),
            "--tools",
            tools.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--input",
            &input,
            "--bundle",
            bundle.to_str().unwrap(),
        ]);
        (out, bundle)
    };
    let (out, capped) = fetch_three_times("200 KiB");
    let answers = json_output(&out)["answers"].clone();
    assert_eq!(answers[0]["ok"]["status"], 200, "{answers}");
    for refused in [&answers[1], &answers[2]] {
        assert_contains(
            refused["error"].as_str().unwrap(),
            &["http-response-body-size"],
        );
    }
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &[
            "denied: journal: the run's journal holds",
            "of the 200 KiB it may (",
            "policy.toml), too little for",
        ],
    );
    let replay = run(&["replay", capped.to_str().unwrap()]);
    assert_contains(&text_output(&replay), &["identical"]);
    // Under the default allowance all three are kept: the capped journal left out two
    // responses, and everything the tools passed on of them.
    let (out, uncapped) = fetch_three_times("256 MiB");
    let answers = json_output(&out)["answers"].clone();
    assert_eq!(answers[2]["ok"]["status"], 200, "{answers}");
    let size = |path: &std::path::Path| std::fs::metadata(path).unwrap().len();
    assert!(
        size(&uncapped) > size(&capped) + 4 * 64 * 1024,
        "{} bytes capped, {} not",
        size(&capped),
        size(&uncapped)
    );
}
