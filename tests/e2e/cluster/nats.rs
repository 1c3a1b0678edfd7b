//! A `nats-server -js` of the test's own (Debian's `nats-server` package; `.ci/run` installs
//! it) on a free loopback port, its JetStream store in a temporary directory; and `baton
//! worker` processes pulling steps from it. Shared by the end-to-end tests and the cluster
//! benchmark, which includes this file.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nats {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nats {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (Debian's nats-server package; .ci/run installs it)");
        let nats = Nats {
            child,
            port,
            _dir: dir,
        };
        // It listens for clients once JetStream is up.
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `baton worker` process.
pub struct Worker {
    pub child: Child,
    pub name: String,
}

impl Worker {
    /// Starts worker `name` with `baton` (the command, its environment set) and `extra`
    /// arguments, and waits until it says it is ready.
    pub fn start(mut baton: Command, nats: &Nats, store: &str, name: &str, extra: &[&str]) -> Self {
        let mut child = baton
            .args([
                "worker",
                "--nats",
                &nats.url(),
                "--store",
                store,
                "--name",
                name,
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = Vec::new();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("worker {name} ended before it was ready: {said:?}"))
                .unwrap();
            if line.contains("ready for") {
                break;
            }
            said.push(line);
        }
        // The rest of what it says is drained, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Worker {
            child,
            name: name.into(),
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}
