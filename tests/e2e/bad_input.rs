//! Every kind of bad input: one clear line, exit status 2, no panic.

use crate::common::*;

fn write_temp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn a_file_that_is_not_wasm() {
    let (_dir, path) = write_temp("notes.wasm", b"these are not the bytes you are looking for");
    let line = error_line(&run(&["call", &path, "--input", "{}"]), 2);
    assert_contains(
        &line,
        &[
            "notes.wasm is not a WebAssembly file (it starts with these ar)",
            "wasm32-wasip2",
        ],
    );
}

/// A junk file's bytes never reach the terminal: a workflow that is not TOML is named by
/// line and column, and a file that is not WebAssembly shows its first bytes escaped.
#[test]
fn a_junk_files_bytes_are_never_echoed_raw() {
    let junk = b"\x1b[2J\x1b[31mhello junk\x07\n";
    let (_dir, workflow) = write_temp("flow.toml", junk);
    let out = run(&["run", &workflow, "--task", "x"]);
    let line = error_line(&out, 2);
    assert_contains(&line, &["flow.toml", "line 1, column 2"]);
    let (_other, component) = write_temp("tool.wasm", junk);
    let out = run(&["call", &component, "--input", "{}"]);
    assert_contains(&error_line(&out, 2), &["it starts with \\u{1b}[2J"]);
    for out in [run(&["run", &workflow, "--task", "x"]), out] {
        assert!(!out.stderr.contains(&0x1b) && !out.stderr.contains(&0x07));
    }
}

/// Input larger than a call may take is refused before it is parsed, from the command line,
/// standard input or a policy's limit; the limit cannot be set per plugin.
#[test]
fn input_larger_than_max_input_is_refused_before_parsing() {
    let calc = plugin("calc.wasm");
    let calc = calc.to_str().unwrap();
    let big = format!("{{\"expression\": \"{}\"}}", "1+".repeat(1024));
    let out = run(&["call", calc, "--max-input", "1 KiB", "--input", &big]);
    assert_contains(
        &error_line(&out, 2),
        &["input is 2.0 KiB", "larger than the 1 KiB", "(--max-input)"],
    );

    // 17 MiB on standard input, against the default of 16 MiB: not even valid JSON.
    let mut child = baton()
        .args(["call", calc, "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..17 {
            if std::io::Write::write_all(&mut stdin, &chunk).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_contains(
        &error_line(&out, 2),
        &["larger than the 16 MiB", "the default"],
    );

    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "[limits]\nmax_input = \"100 B\"\n");
    let policy = policy.to_str().unwrap();
    let out = run(&["--policy", policy, "call", calc, "--input", &big]);
    assert_contains(
        &error_line(&out, 2),
        &["[limits] max_input in", "policy.toml"],
    );

    let per_plugin = write_policy(dir.path(), "[plugins.calc.limits]\nmax_input = \"1 KiB\"\n");
    let out = run(&[
        "--policy",
        per_plugin.to_str().unwrap(),
        "call",
        calc,
        "--input",
        "{}",
    ]);
    assert_contains(
        &error_line(&out, 5),
        &["max_input in [plugins.calc.limits]", "set it in [limits]"],
    );
}

#[test]
fn an_empty_file() {
    let (_dir, path) = write_temp("empty.wasm", b"");
    let line = error_line(&run(&["inspect", &path]), 2);
    assert_contains(
        &line,
        &["empty.wasm is not a WebAssembly file (the file is empty)"],
    );
}

#[test]
fn a_core_module_instead_of_a_component() {
    // The smallest valid core module: magic and version 1, no sections.
    let (_dir, path) = write_temp("core.wasm", b"\0asm\x01\0\0\0");
    let line = error_line(&run(&["call", &path, "--input", "{}"]), 2);
    assert_contains(
        &line,
        &["core.wasm is a core WebAssembly module, not a component"],
    );
}

#[test]
fn a_component_of_an_unknown_world() {
    let path = plugin("testing/unknown-world.wasm");
    let line = error_line(&run(&["inspect", path.to_str().unwrap()]), 2);
    assert_contains(
        &line,
        &[
            "cannot be used as a Baton plugin: it exports wasi:cli/run@0.2.",
            "which is not a Baton world",
            "baton:plugin/tool-api@0.1.0",
        ],
    );
}

#[test]
fn a_truncated_component() {
    let bytes = std::fs::read(plugin("calc.wasm")).unwrap();
    let (dir, path) = write_temp("truncated.wasm", &bytes[..bytes.len() / 2]);
    // Unsigned bytes never reach the compiler under the built-in policy; without that
    // requirement the compiler finds them truncated.
    let policy = dir.path().join("unsigned-ok.toml");
    std::fs::write(&policy, "[trust]\nrequire_signatures = false\n").unwrap();
    let line = error_line(
        &run(&[
            "call",
            &path,
            "--input",
            "{}",
            "--policy",
            policy.to_str().unwrap(),
        ]),
        2,
    );
    assert_contains(
        &line,
        &[
            "truncated.wasm is not a valid component: ",
            "truncated or corrupt",
        ],
    );
}

#[test]
fn a_file_that_does_not_exist() {
    let line = error_line(
        &run(&["call", "/nonexistent/tool.wasm", "--input", "{}"]),
        2,
    );
    assert_contains(&line, &["cannot read /nonexistent/tool.wasm"]);
}

#[test]
fn input_that_is_not_json() {
    let line = error_line(&call("calc.wasm", "expression: 1+1", &[]), 2);
    assert_contains(
        &line,
        &["input is not JSON: expected value at line 1 column 1"],
    );
}

#[test]
fn input_that_violates_the_schema_names_the_path() {
    let line = error_line(&call("calc.wasm", r#"{"expression": 12}"#, &[]), 2);
    assert_contains(
        &line,
        &[
            "tool 'calc' refused the call: input does not match the input schema at /expression",
            "is not of type \"string\"",
        ],
    );
}

#[test]
fn input_missing_a_required_property_is_refused_at_the_root() {
    let line = error_line(&call("calc.wasm", r#"{"expr": "1 + 1"}"#, &[]), 2);
    assert_contains(&line, &["input does not match the input schema at /:"]);
}

#[test]
fn bad_limit_flags_are_usage_errors() {
    let out = call("calc.wasm", "{}", &["--memory", "9 GiB"]);
    assert_eq!(out.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &[
            "invalid value '9 GiB' for '--memory <SIZE>'",
            "between 64 KiB and 4 GiB",
        ],
    );
}

/// A deadline too long to add to the clock is refused where it is read: on the command
/// line, in a policy, in a workflow and in a budget (it used to panic inside the sandbox).
#[test]
fn a_duration_longer_than_a_year_is_refused_where_it_is_read() {
    const FOREVER: &str = "18446744073709551615s";
    const WHY: &str = "longer than a year, the longest duration Baton takes";
    let out = call("calc.wasm", "{}", &["--timeout", FOREVER]);
    assert_eq!(out.status.code(), Some(2));
    assert_contains(&String::from_utf8_lossy(&out.stderr), &[WHY]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("[limits]\ntimeout = \"{FOREVER}\"\n")).unwrap();
    let line = error_line(
        &call("calc.wasm", "{}", &["--policy", policy.to_str().unwrap()]),
        5,
    );
    assert_contains(&line, &["line 2, column 11", WHY]);
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!("planner = \"p.wasm\"\n[steps.a]\ntimeout = \"{FOREVER}\"\n"),
    )
    .unwrap();
    let line = error_line(&run(&["run", flow.to_str().unwrap()]), 2);
    assert_contains(&line, &["[steps.a] timeout", WHY]);
    let out = call("calc.wasm", "{}", &["--budget", "time=300000000000y"]);
    assert_eq!(out.status.code(), Some(2));
    assert_contains(&String::from_utf8_lossy(&out.stderr), &["time: ", WHY]);
}

#[test]
fn a_component_exporting_two_worlds() {
    let path = plugin("testing/two-worlds.wasm");
    let line = error_line(&run(&["inspect", path.to_str().unwrap()]), 2);
    assert_contains(
        &line,
        &["it exports more than one Baton world (tool, prompt); a plugin must be exactly one"],
    );
}

#[test]
fn calling_a_planner_component_is_a_usage_error() {
    let line = error_line(&call("planners/static.wasm", "{}", &[]), 2);
    assert_contains(
        &line,
        &[
            "static.wasm is a planner component; only tools are called with input and prompts \
             rendered with variables; planners run a workflow (`baton run --planner`)",
        ],
    );
}

/// A flag is offered only by the commands it acts on: the limits by those that run
/// components (and `inspect`, which shows them), the budget by those whose runs spend it.
#[test]
fn limit_and_budget_flags_are_offered_only_where_they_act() {
    let help = |command: &[&str]| {
        let out = run(&[command, &["--help"]].concat());
        text_output(&out)
    };
    for command in [
        &["trace", "ls"][..],
        &["policy", "check"],
        &["cache", "stats"],
    ] {
        let text = help(command);
        for flag in [
            "--fuel",
            "--memory",
            "--timeout",
            "--budget",
            "--max-output",
        ] {
            assert!(!text.contains(flag), "{command:?} offers {flag}: {text}");
        }
    }
    for command in [&["call"][..], &["run"], &["mcp"], &["serve"]] {
        assert_contains(&help(command), &["--fuel", "--timeout", "--budget"]);
    }
    assert_contains(&help(&["inspect"]), &["--fuel", "--memory"]);
    assert!(!help(&["inspect"]).contains("--budget"));
    assert_contains(&help(&["keys", "create"]), &["--budget"]);
    // Given where it does nothing, a flag is a usage error rather than silently ignored.
    let out = run(&["trace", "ls", "--fuel", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &["unexpected argument '--fuel'"],
    );
}
