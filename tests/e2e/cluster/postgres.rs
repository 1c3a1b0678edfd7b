//! A PostgreSQL server of the test's own: `initdb` into a temporary directory, started with
//! `pg_ctl` on a free loopback port (as the unprivileged `nobody` when the tests run as root,
//! since PostgreSQL refuses to run as root), stopped when dropped. Debian's `postgresql`
//! package provides the programs (`.ci/run` installs it). Shared by the end-to-end tests, the
//! store's own tests and the benchmarks, which include this file.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user the server runs as when the tests run as root (Debian's `nobody`).
const NOBODY: u32 = 65534;

pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    /// A new database cluster, running.
    pub fn start() -> Self {
        let builder = tempfile::Builder::new().prefix("baton-pg").clone();
        // As root, in /tmp: `nobody` must be able to reach the directory, whatever TMPDIR is.
        let dir = match is_root() {
            true => builder.tempdir_in("/tmp").unwrap(),
            false => builder.tempdir().unwrap(),
        };
        if is_root() {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Postgres { dir, port };
        let data = server.data();
        server.run(
            Command::new(program("initdb"))
                .args(["--auth=trust", "--username=baton", "--encoding=UTF8"])
                .args(["--locale=C", "--no-sync", "-D"])
                .arg(&data),
        );
        server.resume();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://baton@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://baton@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts it again after `stop` (the same data, the same port).
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.run(
            Command::new(program("pg_ctl"))
                .args(["-w", "-t", "60", "-o", &options, "-l"])
                .arg(self.dir.path().join("server.log"))
                .arg("-D")
                .arg(self.data())
                .arg("start"),
        );
    }

    /// Stops it, finishing what it committed (a fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        self.run(
            Command::new(program("pg_ctl"))
                .args(["-w", "-m", "fast", "-D"])
                .arg(self.data())
                .arg("stop"),
        );
    }

    /// Runs one of PostgreSQL's programs as the server's user; panics with its output if it
    /// fails.
    fn run(&self, command: &mut Command) -> Output {
        if is_root() {
            command.uid(NOBODY).gid(NOBODY);
        }
        let output = command
            .current_dir(self.dir.path())
            .output()
            .expect("PostgreSQL's programs run (Debian's postgresql package; .ci/run installs it)");
        assert!(
            output.status.success(),
            "{:?} failed: {}{}\n{}",
            command.get_program(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
        output
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = Command::new(program("pg_ctl"));
        stop.args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop");
        if is_root() {
            stop.uid(NOBODY).gid(NOBODY);
        }
        let _ = stop.output();
    }
}

/// Whether the tests run as root (`/proc/self` belongs to the process's user).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// PostgreSQL's program `name`: on PATH, or where Debian installs it.
pub fn program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    on_path
        .or_else(|| {
            let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| Some(e.ok()?.path().join("bin").join(name)))
                .filter(|p| p.is_file())
                .collect();
            versions.sort();
            versions.pop()
        })
        .unwrap_or_else(|| Path::new(name).to_owned())
}
