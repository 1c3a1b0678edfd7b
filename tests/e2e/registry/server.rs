//! A `docker-registry` (Debian's package: the CNCF distribution registry) on a loopback port,
//! for the registry tests and the registry benchmark (which includes this file).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `docker-registry` serving from a temporary directory on a loopback port.
pub struct Registry {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// One that answers only `user` with `password` (HTTP basic authentication).
    pub fn start_with_login(user: &str, password: &str) -> Self {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A free port: the registry cannot report one it picked itself.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{}\n", bcrypt(password))).unwrap();
            yaml += &format!(
                "auth:\n  htpasswd:\n    realm: baton-tests\n    path: {}\n",
                htpasswd.display()
            );
        }
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (Debian's docker-registry package; .ci/run installs it)");
        let registry = Registry {
            child,
            host,
            _dir: dir,
        };
        registry.wait_ready();
        registry
    }

    /// Waits until it accepts connections (it listens once it is ready to serve).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(&self.host).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on {}",
                self.host
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `oci://HOST/REPO:TAG` in this registry.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        format!("oci://{}/{repository_and_tag}", self.host)
    }

    /// Stops it, as a registry that has gone away.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `password`'s bcrypt hash, the only form the registry's htpasswd file takes, from Python's
/// `bcrypt` package.
fn bcrypt(password: &str) -> String {
    let output = Command::new("python3")
        .args([
            "-c",
            "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt()).decode())",
            password,
        ])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "Python's bcrypt package hashes the password (cargo xtask test installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
