//! What Python's runtime imports beyond the Rust tools' WASI (sockets, the CLI environment)
//! gives a tool nothing it was not granted.

use std::net::TcpListener;

use crate::common::json_output;

use super::Project;

#[test]
fn a_python_tool_is_denied_files_outside_its_grant_ungranted_environment_and_sockets() {
    let project = Project::named("tool", "python", "probe");
    project.write("app.py", include_str!("probe.py"));
    std::fs::create_dir(project.dir.join("granted")).unwrap();
    project.write("granted/inside.txt", "granted");
    project.write("outside.txt", "not granted");
    std::fs::write(
        project.dir.join("policy.toml"),
        "[trust]\nkeys = [\"baton.pub\"]\n\n[plugins.probe.fs]\nread = [\"granted:/data\"]\n\n\
         [plugins.probe.env]\nallow = [\"PROBE_VISIBLE\"]\n",
    )
    .unwrap();
    project.build();
    project.sign();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let input = serde_json::json!({
        "port": listener.local_addr().unwrap().port(),
        "outside": project.dir.join("outside.txt"),
    })
    .to_string();
    let output = super::in_dir(&project.dir)
        .env("PROBE_VISIBLE", "granted")
        .env("PROBE_HIDDEN", "secret")
        .args([
            "--policy",
            "policy.toml",
            "call",
            "probe.wasm",
            "--input",
            &input,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let seen = json_output(&output);

    assert_eq!(seen["inside"]["ok"], "granted", "{seen}");
    // `..` out of the granted directory is refused, and journaled as a denial.
    let escape = seen["escape"]["error"].as_str().unwrap_or_default();
    assert!(escape.starts_with("PermissionError"), "{seen}");
    assert!(stderr.contains("denied: "), "{stderr}");
    // A host path outside the grant names nothing the guest holds.
    let absolute = seen["absolute"]["error"].as_str().unwrap_or_default();
    assert!(absolute.starts_with("FileNotFoundError"), "{seen}");
    // Only the granted variable is there.
    assert_eq!(
        seen["env"],
        serde_json::json!({"PROBE_VISIBLE": "granted"}),
        "{seen}"
    );
    // No socket, no name lookup, and nothing reached the listener.
    let socket = seen["socket"]["error"].as_str().unwrap_or_default();
    assert!(socket.starts_with("PermissionError"), "{seen}");
    assert!(seen["lookup"]["error"].is_string(), "{seen}");
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the tool connected"
    );
}
