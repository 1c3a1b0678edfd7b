//! A small HTTP/1.1 server on loopback for egress tests: it records every request it gets
//! and answers by path.
//!
//! - `/hello`: 200 "hello"
//! - `/big`: 200 with 64 KiB of body
//! - `/redirect`: 302 to `http://10.255.0.1:<port>/hello`
//! - `/slow`: 200 "slow" after 200 ms
//! - `/wait/N`: 200 "waited" after N milliseconds
//! - `/trickle`: 200 with a head at once, then its 100-byte body one byte every 100 ms
//! - anything else: 404

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct Server {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// A server speaking TLS with `config` (its URLs are still built with `url`, so use
    /// `https://localhost:<port>` for requests).
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> Self {
        Self::spawn(Some(config))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let (seen, tls) = (seen.clone(), tls.clone());
                        std::thread::spawn(move || match tls {
                            None => serve(stream, port, &seen),
                            Some(config) => {
                                let Ok(connection) = rustls::ServerConnection::new(config) else {
                                    return;
                                };
                                let mut stream = rustls::StreamOwned::new(connection, stream);
                                serve(&mut stream, port, &seen);
                                stream.conn.send_close_notify();
                                let _ = stream.flush();
                            }
                        });
                    }
                }
            })
        };
        Self {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one HTTP/1.1 request (head and a content-length body).
pub fn read_request<S: Read>(reader: &mut BufReader<S>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

fn serve<S: Read + Write>(stream: S, port: u16, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let path = request.path.clone();
    seen.lock().unwrap().push(request);
    if path == "/trickle" {
        let stream = reader.get_mut();
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n";
        let _ = stream.write_all(head.as_bytes());
        for _ in 0..100 {
            if stream
                .write_all(b"x")
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        return;
    }
    let (status, extra, body): (&str, String, Vec<u8>) = match path.as_str() {
        "/hello" => ("200 OK", String::new(), b"hello".to_vec()),
        "/big" => ("200 OK", String::new(), vec![b'x'; 64 * 1024]),
        "/redirect" => (
            "302 Found",
            format!("location: http://10.255.0.1:{port}/hello\r\n"),
            Vec::new(),
        ),
        "/slow" => {
            std::thread::sleep(Duration::from_millis(200));
            ("200 OK", String::new(), b"slow".to_vec())
        }
        wait if wait.starts_with("/wait/") => match wait["/wait/".len()..].parse() {
            Ok(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                ("200 OK", String::new(), b"waited".to_vec())
            }
            Err(_) => ("400 Bad Request", String::new(), b"not a number".to_vec()),
        },
        _ => ("404 Not Found", String::new(), b"no such page".to_vec()),
    };
    let stream = reader.get_mut();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n{extra}connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}
