//! A reader's terminal, for one markdown file: a workspace laid out as a checkout after
//! `cargo xtask plugins` and `cargo xtask models`, a shell whose directory and exports carry
//! from one command to the next, and the peers the file's examples talk to, each on a port of
//! its own in place of the one the file names.

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::cluster::postgres::{Postgres, is_root, program};
use crate::common::{cache_dir, models_dir, plugin};
use crate::model_server::{ModelServer, Reply};
use crate::registry::Registry;

/// The ports the documentation names: each is replaced by a port of this session's.
const DOC_PORTS: &str = r"\b(8080|8081|4222|5000|5432|4318|8000)\b";

/// How long one command may take (building a Python tool is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a server started in the background may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// What one command printed.
#[derive(Debug)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

pub struct Session {
    ws: tempfile::TempDir,
    /// (the documentation's port, this session's, whether the test started its peer).
    ports: Vec<(u16, u16, bool)>,
    /// The process groups of every command, killed when the session ends.
    groups: Vec<i32>,
    teardown: Vec<String>,
    count: usize,
    _registry: Option<Registry>,
    _postgres: Option<Postgres>,
    _openai: Option<ModelServer>,
}

impl Session {
    /// A fresh workspace with the `peers` (`registry`, `postgres`, `openai`) running.
    pub fn new(peers: &[String]) -> Self {
        let builder = tempfile::Builder::new().prefix("baton-docs").clone();
        // As root, in /tmp: `nobody` must be able to reach it, whatever TMPDIR is.
        let ws = match is_root() {
            true => builder.tempdir_in("/tmp").unwrap(),
            false => builder.tempdir().unwrap(),
        };
        // Readable by the unprivileged user PostgreSQL runs as when the tests run as root.
        std::fs::set_permissions(ws.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut ports = Vec::new();
        let registry = peers.iter().any(|p| p == "registry").then(Registry::start);
        if let Some(registry) = &registry {
            ports.push((5000, port_of(&registry.host), true));
        }
        let postgres = peers.iter().any(|p| p == "postgres").then(Postgres::start);
        if let Some(postgres) = &postgres {
            ports.push((5432, port_of(&postgres.url()), true));
        }
        let openai = peers.iter().any(|p| p == "openai").then(|| {
            ModelServer::start(
                Vec::new(),
                Reply::ok("Paris is the capital of France.", (12, 7)),
            )
        });
        if let Some(openai) = &openai {
            ports.push((8000, openai.port, true));
        }
        for port in [8080, 8081, 4222, 5000, 5432, 4318, 8000] {
            if !ports.iter().any(|(doc, _, _)| *doc == port) {
                ports.push((port, free_port(), false));
            }
        }
        let session = Session {
            ws,
            ports,
            groups: Vec::new(),
            teardown: Vec::new(),
            count: 0,
            _registry: registry,
            _postgres: postgres,
            _openai: openai,
        };
        session.lay_out();
        session
    }

    fn root(&self) -> &Path {
        self.ws.path()
    }

    fn state(&self) -> PathBuf {
        self.root().join(".docs-test")
    }

    /// The checkout a reader has: the built binary, plugins and models under `target/`, the
    /// repository's examples, policies, fixtures and labelled cache pairs, and programs the
    /// documentation runs.
    fn lay_out(&self) {
        let root = self.root();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for dir in ["target/debug", "home", "bin", ".docs-test", "tests"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let tmp = root.join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let baton = Path::new(env!("CARGO_BIN_EXE_baton"));
        std::os::unix::fs::symlink(baton, root.join("target/debug/baton")).unwrap();
        std::os::unix::fs::symlink(baton, root.join("bin/baton")).unwrap();
        std::os::unix::fs::symlink(models_dir(), root.join("target/models")).unwrap();
        // A copy: the README signs a plugin again with a key of the reader's.
        let plugins = plugin("trust.toml").parent().unwrap().to_owned();
        copy_dir(&plugins, &root.join("target/plugins"));
        for dir in [
            "examples",
            "policies",
            "tests/fixtures",
            "crates/baton/benches/data",
        ] {
            copy_dir(&repo.join(dir), &root.join(dir));
        }
        std::fs::write(self.state().join("cwd"), root.to_str().unwrap()).unwrap();
        std::fs::write(self.state().join("env"), "").unwrap();
        self.write_programs();
    }

    /// `cargo` (the build steps the suite ran before it), `npx` (the MCP Inspector that
    /// `cargo xtask test` installed) and, as root, PostgreSQL's programs run as `nobody`.
    fn write_programs(&self) {
        let bin = self.root().join("bin");
        let script = |name: &str, text: String| {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{text}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "cargo",
            "case \"$*\" in\n\
             \"build -p baton\"|\"xtask plugins\"|\"xtask models\")\n\
             echo \"cargo $*: done before the tests ran\" >&2; exit 0;;\n\
             esac\n\
             echo \"the documentation's test cannot run cargo $*\" >&2; exit 2\n"
                .into(),
        );
        let inspector = std::env::var("BATON_MCP_INSPECTOR").unwrap_or_else(|_| {
            format!(
                "{}/../../target/npm/node_modules/.bin/mcp-inspector",
                env!("CARGO_MANIFEST_DIR")
            )
        });
        script(
            "npx",
            format!(
                "[ \"$1\" = @modelcontextprotocol/inspector ] && shift && exec {inspector} \"$@\"\n\
                 echo \"the documentation's test has no npx $1\" >&2; exit 2\n"
            ),
        );
        for name in ["initdb", "pg_ctl"] {
            let program = program(name);
            let run_as = match is_root() {
                true => "setpriv --reuid=65534 --regid=65534 --clear-groups ",
                false => "",
            };
            script(name, format!("exec {run_as}{} \"$@\"\n", program.display()));
        }
    }

    /// `text` with the documentation's ports replaced by this session's, and `/tmp/` by the
    /// workspace's own.
    pub fn localize(&self, text: &str) -> String {
        let ports = Regex::new(DOC_PORTS).unwrap();
        let text = ports.replace_all(text, |c: &regex::Captures| {
            let doc: u16 = c[1].parse().unwrap();
            let (_, real, _) = self.ports.iter().find(|(d, _, _)| *d == doc).unwrap();
            real.to_string()
        });
        text.replace("/tmp/", &format!("{}/", self.root().join("tmp").display()))
    }

    /// Writes (or appends) `text` to `name` in the shell's current directory.
    pub fn write_file(&self, name: &str, text: &str) {
        let cwd = std::fs::read_to_string(self.state().join("cwd")).unwrap();
        let path = Path::new(cwd.trim()).join(name);
        let mut old = std::fs::read_to_string(&path).unwrap_or_default();
        old.push_str(&self.localize(text));
        std::fs::write(path, old).unwrap();
    }

    /// Runs `command` when the session ends (see `finish`).
    pub fn on_teardown(&mut self, command: &str) {
        self.teardown.push(command.into());
    }

    /// Runs the teardown commands: stops what the examples started outside the shell's
    /// process groups (a daemonized server).
    pub fn finish(&mut self) -> Result<(), String> {
        for command in std::mem::take(&mut self.teardown) {
            self.run(&command)?;
        }
        Ok(())
    }

    /// Runs `command` as the next line typed at the terminal; `Err` says why it failed.
    /// Every variable it sets is exported (`set -a`), so that the next command sees it, as
    /// the next line at a terminal would.
    pub fn run(&mut self, command: &str) -> Result<Ran, String> {
        let command = self.localize(command);
        let background = command.trim_end().ends_with('&');
        if let Some(port) = self.own_port(&command).filter(|_| background)
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Err(format!(
                "`{command}` would listen on port {port}, which an earlier example holds"
            ));
        }
        self.count += 1;
        let state = self.state();
        // `set -e` without `pipefail`, as at a terminal: a pipeline's status is its last
        // command's, so `baton trace ls | head -1` is not failed by the pipe `head` closes.
        let base = state.join(self.count.to_string());
        let script = base.with_extension("sh");
        std::fs::write(
            &script,
            format!(
                "set -a\n. \"{s}/env\"\ncd \"$(cat \"{s}/cwd\")\"\nset -e\n\
                 {command}\npwd > \"{s}/cwd\"\nexport -p > \"{s}/env\"\n",
                s = state.display()
            ),
        )
        .unwrap();
        let (out, err) = (base.with_extension("out"), base.with_extension("err"));
        // Files, not pipes: a server the command leaves running keeps writing to them.
        let mut child = self
            .shell()
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        self.groups.push(child.id() as i32);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                kill_group(child.id() as i32);
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let ran = Ran {
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        };
        let failed = match status {
            None => Some(format!("did not finish within {COMMAND_TIMEOUT:?}")),
            Some(status) if !status.success() => Some(format!("failed ({status})")),
            Some(_) => None,
        };
        if let Some(why) = failed {
            return Err(format!(
                "`{command}` {why}\n--- stdout\n{}\n--- stderr\n{}",
                tail(&ran.stdout),
                tail(&ran.stderr)
            ));
        }
        if let Some(port) = self.own_port(&command).filter(|_| background) {
            self.wait_for_listener(&command, port, &err)?;
        }
        Ok(ran)
    }

    /// The port a server that `command` starts listens on (`--listen`, `--http` or `-p`),
    /// when it is one of this session's own.
    fn own_port(&self, command: &str) -> Option<u16> {
        Regex::new(r"(?:--listen|--http|-p)[ =](?:[\w.]+:)?(\d+)\b")
            .unwrap()
            .captures_iter(command)
            .filter_map(|c| c[1].parse::<u16>().ok())
            .find(|p| self.ports.iter().any(|(_, real, peer)| real == p && !peer))
    }

    /// After a server is started in the background: waits until it accepts connections.
    fn wait_for_listener(&self, command: &str, port: u16, err: &Path) -> Result<(), String> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "`{command}` did not listen on port {port} within {LISTEN_TIMEOUT:?}\n\
                     --- stderr\n{}",
                    tail(&std::fs::read_to_string(err).unwrap_or_default())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `bash` with a reader's environment: this workspace's programs first on PATH, its own
    /// home, and the suite's compile cache and models.
    fn shell(&self) -> Command {
        let root = self.root();
        let mut path = vec![root.join("bin")];
        path.extend(python_scripts());
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        let mut command = Command::new("bash");
        command
            .env_clear()
            .current_dir(root)
            .env("PATH", std::env::join_paths(path).unwrap())
            .env("HOME", root.join("home"))
            .env("TMPDIR", root.join("tmp"))
            .env("LANG", "C.UTF-8")
            .env("BATON_CACHE_DIR", cache_dir())
            .env("BATON_MODELS", models_dir())
            .env("PYTHONUSERBASE", python_user_base())
            .env(
                "CARGO_HOME",
                std::env::var_os("CARGO_HOME").unwrap_or(home.join(".cargo").into()),
            )
            .env(
                "RUSTUP_HOME",
                std::env::var_os("RUSTUP_HOME").unwrap_or(home.join(".rustup").into()),
            )
            .env(
                "CARGO_TARGET_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("templates"),
            );
        command
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // After a failure, as much as can be stopped.
        let _ = self.finish();
        for group in &self.groups {
            kill_group(*group);
        }
    }
}

fn kill_group(group: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; it touches no memory.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The port in `HOST:PORT` or `scheme://user@HOST:PORT/path`.
fn port_of(address: &str) -> u16 {
    let after = address.rsplit_once(':').unwrap().1;
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The last lines of `text`, enough to see why a command failed.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Where pip puts scripts (componentize-py), system-wide and for the user.
fn python_scripts() -> Vec<PathBuf> {
    python(
        "import os, sysconfig; print(sysconfig.get_path('scripts')); \
         print(sysconfig.get_path('scripts', os.name + '_user'))",
    )
    .lines()
    .map(PathBuf::from)
    .collect()
}

/// The user's Python packages, found with the real home (the shell has a home of its own).
fn python_user_base() -> String {
    python("import site; print(site.getuserbase())")
        .trim()
        .into()
}

fn python(code: &str) -> String {
    let output = Command::new("python3").args(["-c", code]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_dir(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
}
