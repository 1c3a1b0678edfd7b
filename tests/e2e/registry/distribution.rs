//! Push, pull, verify, refuse, and work offline.

use std::process::Output;

use crate::common::{assert_contains, copy_plugin, error_line, json_output, text_output};

use super::{Registry, cached_in, keypair, with_cache};

#[test]
fn a_signed_component_is_pushed_pulled_by_tag_and_digest_and_served_offline_from_the_cache() {
    let mut registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let calc = copy_plugin("calc.wasm", dir.path());
    let tag = registry.reference("tools/calc:1.0.0");

    let pinned = text_output(&with_cache(&cache, &["push", calc.to_str().unwrap(), &tag]));
    let pinned = pinned.trim();
    let prefix = format!("oci://{}/tools/calc@sha256:", registry.host);
    assert!(pinned.starts_with(&prefix), "{pinned}");

    // `baton pull` verifies under the policy and prints the reference pinned to the digest.
    let pull = with_cache(&cache, &["pull", &tag]);
    assert_eq!(text_output(&pull).trim(), pinned);
    let said = String::from_utf8_lossy(&pull.stderr);
    assert!(
        said.contains("tool calc") && said.contains("signed by key baton-dev"),
        "{said}"
    );

    let input = r#"{"expression": "6 * 7"}"#;
    for reference in [tag.as_str(), pinned] {
        let output = with_cache(&cache, &["call", reference, "--input", input]);
        assert_eq!(json_output(&output)["value"], 42.0, "{reference}");
    }
    // A workflow names it like a file.
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            "planner = {:?}\ntools = [{tag:?}]\n\n[[config.steps]]\nid = \"a\"\ntool = \
             \"calc\"\ninput = {{ expression = \"2 + 3\" }}\n\n[config.output]\nsum = \
             \"{{{{a.output.value}}}}\"\n",
            crate::common::plugin("planners/static.wasm")
        ),
    )
    .unwrap();
    let run = with_cache(&cache, &["run", flow.to_str().unwrap()]);
    assert_eq!(json_output(&run)["sum"], 5.0);
    // And an MCP client (the MCP Inspector) calls it through `baton mcp`.
    let mcp = [env!("CARGO_BIN_EXE_baton"), "mcp", "--tools", &tag];
    let call = ["--method", "tools/call", "--tool-name", "calc"];
    let args = ["--tool-arg", "expression=2 ^ 5"];
    let store = dir.path().join("journal.db");
    let called = crate::mcp::inspector(&[&mcp[..], &call, &args].concat(), &store);
    assert_eq!(called["structuredContent"]["value"].as_f64(), Some(32.0));

    // With the registry gone, both the digest and the tag are served from the cache.
    registry.stop();
    for reference in [pinned, tag.as_str()] {
        let output = with_cache(&cache, &["call", reference, "--input", input]);
        assert_eq!(json_output(&output)["value"], 42.0, "{reference}");
    }
    // What was never pulled cannot be served.
    let never = registry.reference("tools/other:1.0.0");
    let line = error_line(&with_cache(&cache, &["call", &never, "--input", "{}"]), 2);
    assert!(
        line.starts_with(&format!("error: cannot pull {never}: ")),
        "{line}"
    );
}

#[test]
fn an_unsigned_artifact_and_a_tag_moved_to_an_untrusted_signer_are_refused() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let tag = registry.reference("tools/calc:stable");
    let input = r#"{"expression": "1 + 1"}"#;

    // Signed by the trusted key: it runs.
    let trusted = copy_plugin("calc.wasm", dir.path());
    let pinned = text_output(&with_cache(
        &cache,
        &["push", trusted.to_str().unwrap(), &tag],
    ));
    assert_eq!(
        json_output(&with_cache(&cache, &["call", &tag, "--input", input]))["value"],
        2.0
    );

    // The same bytes re-signed by a key the policy does not trust, pushed to the same tag.
    let other = tempfile::tempdir().unwrap();
    let resigned = other.path().join("calc.wasm");
    std::fs::copy(&trusted, &resigned).unwrap();
    let (key, _) = keypair(other.path());
    let signed = crate::common::baton()
        .env("BATON_KEY_PASSWORD", "registry tests")
        .args([
            "sign",
            "--key",
            key.to_str().unwrap(),
            resigned.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    text_output(&signed);
    text_output(&with_cache(
        &cache,
        &["push", resigned.to_str().unwrap(), &tag],
    ));
    let line = error_line(&with_cache(&cache, &["call", &tag, "--input", input]), 4);
    assert!(line.contains("is not trusted"), "{line}");
    // The digest pinned before still names the trusted component.
    let output = with_cache(&cache, &["call", pinned.trim(), "--input", input]);
    assert_eq!(json_output(&output)["value"], 2.0);

    // Unsigned: pushed with a warning, refused at load.
    let bare = tempfile::tempdir().unwrap();
    let unsigned = bare.path().join("calc.wasm");
    std::fs::copy(&trusted, &unsigned).unwrap();
    let unsigned_tag = registry.reference("tools/calc:unsigned");
    let push = with_cache(&cache, &["push", unsigned.to_str().unwrap(), &unsigned_tag]);
    text_output(&push);
    assert!(
        String::from_utf8_lossy(&push.stderr).contains("has no signature beside it"),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let line = error_line(
        &with_cache(&cache, &["call", &unsigned_tag, "--input", input]),
        4,
    );
    assert!(line.contains("is not trusted: it is unsigned"), "{line}");
}

#[test]
fn bad_references_and_pushes_are_clear_errors() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let calc = copy_plugin("calc.wasm", dir.path());
    let calc = calc.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["call", "oci://calc:1", "--input", "{}"],
            2,
            "'oci://calc:1' is not a component reference: it names no registry host",
        ),
        (
            &["push", calc, "127.0.0.1:5000/calc:1"],
            2,
            "is not a component reference: it does not start with oci://",
        ),
        (
            &[
                "push",
                calc,
                &format!("oci://{}/calc@sha256:{}", registry.host, "0".repeat(64)),
            ],
            2,
            "a push names a tag (oci://HOST/REPO:TAG), not a digest",
        ),
        (
            &["push", "missing.wasm", &registry.reference("calc:1")],
            2,
            "cannot read missing.wasm",
        ),
    ];
    for (args, code, message) in cases {
        let line = error_line(&with_cache(&cache, args), code);
        assert!(line.contains(message), "{args:?}: {line}");
    }
    let not_a_component = dir.path().join("notes.wasm");
    std::fs::write(&not_a_component, "just text").unwrap();
    let line = error_line(
        &with_cache(
            &cache,
            &[
                "push",
                not_a_component.to_str().unwrap(),
                &registry.reference("calc:1"),
            ],
        ),
        2,
    );
    assert!(
        line.contains("notes.wasm is not a WebAssembly component"),
        "{line}"
    );
}

#[test]
fn a_version_range_picks_the_newest_tag_that_verifies() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let trusted = copy_plugin("calc.wasm", dir.path());
    let other = tempfile::tempdir().unwrap();
    let untrusted = other.path().join("calc.wasm");
    std::fs::copy(&trusted, &untrusted).unwrap();
    let (key, _) = keypair(other.path());
    text_output(
        &crate::common::baton()
            .env("BATON_KEY_PASSWORD", "registry tests")
            .args([
                "sign",
                "--key",
                key.to_str().unwrap(),
                untrusted.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
    );
    for (file, tag) in [
        (&trusted, "1.0.0"),
        (&untrusted, "1.1.0"),
        (&trusted, "2.0.0"),
        (&trusted, "latest"),
    ] {
        let reference = registry.reference(&format!("tools/calc:{tag}"));
        let output = with_cache(&cache, &["push", file.to_str().unwrap(), &reference]);
        text_output(&output);
    }
    let input = r#"{"expression": "3 * 3"}"#;
    // ^1: 1.1.0 is signed by a key the policy does not trust, so 1.0.0 is chosen.
    let output = with_cache(
        &cache,
        &[
            "call",
            &registry.reference("tools/calc:^1"),
            "--input",
            input,
        ],
    );
    assert_eq!(json_output(&output)["value"], 9.0);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("tools/calc:1.1.0 passed over") && said.contains("is not trusted"),
        "{said}"
    );
    let line = error_line(
        &with_cache(
            &cache,
            &[
                "call",
                &registry.reference("tools/calc:>=3"),
                "--input",
                input,
            ],
        ),
        2,
    );
    assert!(
        line.contains("no tool matches") && line.contains("no tag of the repository matches"),
        "{line}"
    );
    // Pushing to a range is refused.
    let line = error_line(
        &with_cache(
            &cache,
            &[
                "push",
                trusted.to_str().unwrap(),
                &registry.reference("tools/calc:^1"),
            ],
        ),
        2,
    );
    assert!(line.contains("a push names a tag"), "{line}");
}

/// A registry that answers every request with an empty manifest whose digest header is
/// `digest`; returns its `HOST:PORT`.
fn lying_registry(digest: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\n\
                 docker-content-digest: {digest}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            );
        }
    });
    host
}

#[test]
fn a_digest_the_registry_makes_up_is_refused_and_never_names_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // Where `cache/oci/../../decoy` leads: a component the pull must not take for its own.
    std::fs::create_dir_all(dir.path().join("decoy")).unwrap();
    copy_plugin("calc.wasm", &dir.path().join("decoy"));
    let host = lying_registry("../../decoy");
    let pulled = with_cache(&cache, &["pull", &format!("oci://{host}/calc:1")]);
    let line = error_line(&pulled, 2);
    assert_contains(
        &line,
        &[
            "the registry answered '../../decoy' as the digest of",
            "which is not a digest",
        ],
    );
    assert!(!String::from_utf8_lossy(&pulled.stdout).contains("decoy"));
}

/// `baton ARGS...` with `cache`, and the registry login `user:password` when given.
fn logged_in(cache: &std::path::Path, login: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut command = cached_in(cache);
    command.args(args);
    if let Some((user, password)) = login {
        command
            .env("BATON_REGISTRY_USERNAME", user)
            .env("BATON_REGISTRY_PASSWORD", password);
    }
    command.output().unwrap()
}

#[test]
fn a_registry_that_asks_for_credentials_is_given_them_and_a_cached_tag_still_asks_it() {
    let registry = Registry::start_with_login("publisher", "registry password");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let calc = copy_plugin("calc.wasm", dir.path());
    let tag = registry.reference("tools/calc:1.0.0");
    let login = Some(("publisher", "registry password"));
    let wrong = Some(("publisher", "not the password"));
    let credentials = "its credentials (BATON_REGISTRY_USERNAME, BATON_REGISTRY_PASSWORD)";

    for refused in [None, wrong] {
        let pushed = logged_in(&cache, refused, &["push", calc.to_str().unwrap(), &tag]);
        let line = error_line(&pushed, 2);
        assert_contains(
            &line,
            &[&format!("error: cannot push {tag}: "), credentials],
        );
    }
    let pinned = text_output(&logged_in(
        &cache,
        login,
        &["push", calc.to_str().unwrap(), &tag],
    ));

    let input = r#"{"expression": "6 * 7"}"#;
    let call = ["call", tag.as_str(), "--input", input];
    let line = error_line(&logged_in(&cache, None, &call), 2);
    assert_contains(
        &line,
        &[&format!("error: cannot pull {tag}: "), credentials],
    );
    // Pulled with the login, then called again from the cache: the tag is still resolved by
    // the registry, through its challenge, so a wrong password is an error and not the cache.
    for _ in 0..2 {
        assert_eq!(json_output(&logged_in(&cache, login, &call))["value"], 42.0);
    }
    let line = error_line(&logged_in(&cache, wrong, &call), 2);
    assert_contains(
        &line,
        &[&format!("error: cannot pull {tag}: "), credentials],
    );
    // By digest, the cache answers without asking.
    let by_digest = ["call", pinned.trim(), "--input", input];
    assert_eq!(
        json_output(&logged_in(&cache, None, &by_digest))["value"],
        42.0
    );
}

#[test]
fn a_registry_that_accepts_and_then_says_nothing_is_not_waited_for_forever() {
    let mut registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let calc = copy_plugin("calc.wasm", dir.path());
    let tag = registry.reference("tools/calc:1.0.0");
    text_output(&with_cache(&cache, &["push", calc.to_str().unwrap(), &tag]));
    let input = r#"{"expression": "6 * 7"}"#;
    assert_eq!(
        json_output(&with_cache(&cache, &["call", &tag, "--input", input]))["value"],
        42.0
    );

    // In the registry's place, a server that accepts every connection and never answers.
    registry.stop();
    let listener = std::net::TcpListener::bind(&registry.host).unwrap();
    // Every connection is kept open, unanswered, for as long as the test runs.
    std::thread::spawn(move || listener.incoming().collect::<Vec<_>>());
    // Both at once: the tag pulled before, and one never pulled.
    let never = registry.reference("tools/other:1.0.0");
    let call = |reference: &str| {
        cached_in(&cache)
            .args(["call", reference, "--input", input])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (cached, uncached) = (call(&tag), call(&never));
    let cached = cached.wait_with_output().unwrap();
    assert_eq!(json_output(&cached)["value"], 42.0);
    let said = String::from_utf8_lossy(&cached.stderr);
    assert_contains(
        &said,
        &["did not answer", "which the tag named when last pulled"],
    );
    let line = error_line(&uncached.wait_with_output().unwrap(), 2);
    assert_contains(
        &line,
        &[&format!("error: cannot pull {never}: "), "timed out"],
    );
}
