//! Filesystem grants: a plugin sees only the directories its policy preopens, may change only
//! those granted for writing, and cannot leave them by `..`, an absolute path or a symlink.
//! Every read is journaled with its bytes, so a replay needs none of the files.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::common::*;

const OUTSIDE: &str = "outside-the-sandbox-7d1e";

/// `dir/data` (read-only at /data, with symlinks leading out), `dir/out` (writable at /out)
/// and a file beside them that no grant covers; returns the policy.
fn sandbox(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("data/sub")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("data/notes.txt"), "first line\nsecond line\n").unwrap();
    std::fs::write(dir.join("secret.txt"), OUTSIDE).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("../secret.txt", dir.join("data/escape")).unwrap();
        std::os::unix::fs::symlink("/", dir.join("data/root")).unwrap();
        std::os::unix::fs::symlink("notes.txt", dir.join("data/alias")).unwrap();
    }
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[plugins.fs-probe.fs]\nread = [\"data\"]\nwrite = [\"out:/out\"]\n",
    )
    .unwrap();
    policy
}

fn probe(dir: &Path, policy: Option<&Path>, ops: Value, extra: &[&str]) -> Output {
    let input = json!({ "ops": ops }).to_string();
    let fs_probe = plugin("testing/fs-probe.wasm");
    let mut args = vec!["call", fs_probe.to_str().unwrap(), "--input", &input];
    let policy = policy.map(|p| p.to_str().unwrap().to_string());
    if let Some(policy) = &policy {
        args.extend(["--policy", policy]);
    }
    args.extend_from_slice(extra);
    run_with_store(&dir.join("journal.db"), &args)
}

fn results(output: &Output) -> Vec<Value> {
    json_output(output)["results"].as_array().unwrap().clone()
}

#[test]
fn granted_directories_are_readable_and_writable_as_granted() {
    let dir = tempfile::tempdir().unwrap();
    let policy = sandbox(dir.path());
    let out = probe(
        dir.path(),
        Some(&policy),
        json!([
            {"op": "read", "path": "/data/notes.txt"},
            {"op": "list", "path": "/data"},
            {"op": "size", "path": "/data/notes.txt"},
            {"op": "write", "path": "/out/report.txt", "text": "made by the tool"},
            {"op": "append", "path": "/out/report.txt", "text": ", then more"},
            {"op": "read", "path": "/out/report.txt"},
            {"op": "mkdir", "path": "/out/sub"},
            {"op": "write", "path": "/data/new.txt", "text": "x"},
            {"op": "remove", "path": "/data/notes.txt"},
        ]),
        &[],
    );
    let r = results(&out);
    assert_eq!(r[0]["ok"], "first line\nsecond line\n");
    let listed: Vec<&str> = r[1]["ok"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"notes.txt") && listed.contains(&"sub"),
        "{listed:?}"
    );
    assert_eq!(r[2]["ok"], 23);
    assert_eq!(r[5]["ok"], "made by the tool, then more");
    assert_eq!(r[6]["ok"], Value::Null);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/report.txt")).unwrap(),
        "made by the tool, then more"
    );
    assert!(dir.path().join("out/sub").is_dir());
    // The read-only directory is untouched, and the refusals are a permission error.
    for refused in [&r[7], &r[8]] {
        assert_eq!(refused["error"], "PermissionDenied", "{refused}");
    }
    assert!(!dir.path().join("data/new.txt").exists());
    assert!(dir.path().join("data/notes.txt").exists());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_contains(
        &stderr,
        &[
            "denied: fs: changing '/data' is not granted to 'fs-probe' (its directory is read-only: fs.read)",
        ],
    );
}

#[cfg(unix)]
#[test]
fn traversal_absolute_paths_and_symlinks_stay_outside() {
    let dir = tempfile::tempdir().unwrap();
    let policy = sandbox(dir.path());
    let bundle = dir.path().join("escape.bundle");
    let out = probe(
        dir.path(),
        Some(&policy),
        json!([
            {"op": "read", "path": "/data/../secret.txt"},
            {"op": "read", "path": "/data/sub/../../secret.txt"},
            {"op": "read", "path": "/data/escape"},
            {"op": "read", "path": "/data/root/etc/hostname"},
            {"op": "list", "path": "/data/root"},
            {"op": "read", "path": "/secret.txt"},
            {"op": "read", "path": "/etc/hostname"},
            {"op": "write", "path": "/out/../data/planted.txt", "text": "x"},
            {"op": "read", "path": "/data/alias"},
        ]),
        &["--bundle", bundle.to_str().unwrap()],
    );
    let r = results(&out);
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains(OUTSIDE), "a file outside leaked: {text}");
    // `..` and symlinks that resolve outside reach the host and are refused there.
    for escaped in &r[0..5] {
        assert_eq!(escaped["error"], "PermissionDenied", "{escaped}");
    }
    // Absolute paths outside every preopen never name a directory the guest holds.
    for absent in &r[5..7] {
        assert_eq!(absent["error"], "NotFound", "{absent}");
    }
    assert_eq!(r[7]["error"], "PermissionDenied", "{}", r[7]);
    assert!(!dir.path().join("data/planted.txt").exists());
    // A symlink that stays inside is followed.
    assert_eq!(r[8]["ok"], "first line\nsecond line\n");

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_contains(
        &stderr,
        &[
            "denied: fs: '/data/../secret.txt' leads outside the directories granted to 'fs-probe'",
            "denied: fs: '/data/escape' leads outside",
            "denied: fs: '/data/root/etc/hostname' leads outside",
        ],
    );
    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap()]));
    assert_contains(
        &shown,
        &[
            "open_at /data path=../secret.txt follow=true flags=read -> error escape",
            "denied             fs: '/data/escape' leads outside",
        ],
    );
}

#[test]
fn without_a_grant_no_file_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    sandbox(dir.path());
    let out = probe(
        dir.path(),
        None,
        json!([
            {"op": "read", "path": "/data/notes.txt"},
            {"op": "write", "path": "/out/x.txt", "text": "x"},
        ]),
        &[],
    );
    let r = results(&out);
    assert_eq!(r[0]["error"], "NotFound", "{}", r[0]);
    assert_eq!(r[1]["error"], "NotFound", "{}", r[1]);
    assert!(!dir.path().join("out/x.txt").exists());
}

#[test]
fn reads_replay_from_the_bundle_without_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let policy = sandbox(dir.path());
    let bundle = dir.path().join("reads.bundle");
    let ops = json!([
        {"op": "read", "path": "/data/notes.txt"},
        {"op": "list", "path": "/data/sub"},
        {"op": "write", "path": "/out/copy.txt", "text": "copied"},
    ]);
    let live = results(&probe(
        dir.path(),
        Some(&policy),
        ops,
        &["--bundle", bundle.to_str().unwrap()],
    ));
    assert_eq!(live[0]["ok"], "first line\nsecond line\n");
    // The files change or vanish; the replay serves what the run read, and writes nothing.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_granted_directory_that_does_not_exist_is_a_policy_error() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[plugins.fs-probe.fs]\nread = [\"missing:/data\"]\n",
    )
    .unwrap();
    let out = probe(dir.path(), Some(&policy), json!([]), &[]);
    let line = error_line(&out, 5);
    assert_contains(
        &line,
        &[
            "missing granted to 'fs-probe' by",
            "policy.toml cannot be opened",
            "create it or fix the policy",
        ],
    );
}

#[test]
fn malformed_mounts_are_policy_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    for (mount, why) in [
        ("data:/", "the guest path must be absolute, not '/'"),
        ("data:/a/../b", "without '.' or '..' parts"),
        ("..", "has no name to mount it at"),
    ] {
        let policy = dir.path().join("bad.toml");
        std::fs::write(&policy, format!("[plugins.x.fs]\n\nread = [\"{mount}\"]\n")).unwrap();
        let line = error_line(&run(&["policy", "check", policy.to_str().unwrap()]), 5);
        assert_contains(&line, &["bad.toml, line 3", why]);
    }
    let policy = dir.path().join("twice.toml");
    std::fs::write(
        &policy,
        "[plugins.x.fs]\nread = [\"a:/data\"]\nwrite = [\"b:/data\"]\n",
    )
    .unwrap();
    let line = error_line(&run(&["policy", "check", policy.to_str().unwrap()]), 5);
    assert_contains(
        &line,
        &["twice.toml, line", "guest path /data is mounted twice"],
    );
}

/// A FIFO (or a device) in a granted directory is refused at open: opening a FIFO would wait
/// for its other end beyond any deadline.
#[cfg(unix)]
#[test]
fn a_fifo_in_a_granted_directory_is_refused_rather_than_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let policy = sandbox(dir.path());
    for fifo in ["data/pipe", "out/pipe"] {
        let path = std::ffi::CString::new(dir.path().join(fifo).to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    }
    let input = json!({ "ops": [
        {"op": "read", "path": "/data/pipe"},
        {"op": "write", "path": "/out/pipe", "text": "x"},
        {"op": "read", "path": "/data/notes.txt"},
    ]})
    .to_string();
    let fs_probe = plugin("testing/fs-probe.wasm");
    let child = baton()
        .env("BATON_STORE", dir.path().join("journal.db"))
        .args(["call", fs_probe.to_str().unwrap(), "--input", &input])
        .args(["--policy", policy.to_str().unwrap(), "--timeout", "5s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A watchdog, not a synchronisation: a host that hangs on the FIFO is killed and fails.
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().unwrap();
    let r = results(&out);
    assert_eq!(r[0]["error"], "Unsupported", "{r:?}");
    assert_eq!(r[1]["error"], "Unsupported", "{r:?}");
    assert_eq!(r[2]["ok"], "first line\nsecond line\n");
}

/// A hard link planted in a granted directory (another name for a file outside it) is not
/// opened, and `readlink` never shows the guest an absolute path on the host.
#[cfg(unix)]
#[test]
fn hard_links_are_refused_and_absolute_link_targets_are_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let policy = sandbox(dir.path());
    std::fs::hard_link(
        dir.path().join("secret.txt"),
        dir.path().join("data/planted"),
    )
    .unwrap();
    let host_path = dir.path().join("secret.txt");
    std::os::unix::fs::symlink(&host_path, dir.path().join("data/absolute")).unwrap();
    let out = probe(
        dir.path(),
        Some(&policy),
        json!([
            {"op": "read", "path": "/data/planted"},
            {"op": "readlink", "path": "/data/absolute"},
            {"op": "readlink", "path": "/data/alias"},
        ]),
        &[],
    );
    let r = results(&out);
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        !text.contains(OUTSIDE),
        "the hard-linked file leaked: {text}"
    );
    assert!(
        !text.contains(dir.path().to_str().unwrap()),
        "a host path leaked: {text}"
    );
    assert_eq!(r[0]["error"], "PermissionDenied", "{}", r[0]);
    assert_eq!(r[1]["error"], "PermissionDenied", "{}", r[1]);
    // A relative target inside is shown as it is.
    assert_eq!(r[2]["ok"], "notes.txt");
}
