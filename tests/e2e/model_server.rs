//! An OpenAI-compatible chat-completions server on loopback with scripted answers, for the
//! LLM tests: each request takes the next scripted reply (then the default one), and every
//! request is recorded with the moment it arrived.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::read_request;

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this text and usage (prompt, completion tokens).
    Ok { text: String, usage: (u32, u32) },
    /// An error status with extra headers (such as retry-after).
    Status {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Answers (as `Ok`) only after this long: longer than a client's timeout, it is one.
    Slow(Duration, Box<Reply>),
}

impl Reply {
    pub fn ok(text: &str, usage: (u32, u32)) -> Self {
        Reply::Ok {
            text: text.into(),
            usage,
        }
    }

    pub fn status(status: u16) -> Self {
        Reply::Status {
            status,
            headers: Vec::new(),
        }
    }

    pub fn status_with(status: u16, header: &str, value: &str) -> Self {
        Reply::Status {
            status,
            headers: vec![(header.into(), value.into())],
        }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
    seen: Vec<Request>,
}

pub struct ModelServer {
    pub port: u16,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ModelServer {
    /// A server answering `replies` in order, then `default` to every further request.
    pub fn start(replies: Vec<Reply>, default: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script {
            queue: replies.into(),
            default,
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (script, stop) = (script.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let script = script.clone();
                        std::thread::spawn(move || serve(stream, &script));
                    }
                }
            })
        };
        Self {
            port,
            script,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL a provider is configured with.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.script.lock().unwrap().seen.clone()
    }

    /// A policy routing `model` to this server through provider `openai`, with `extra`
    /// lines added to the provider's table.
    pub fn policy(&self, model: &str, provider_extra: &str) -> String {
        format!(
            "[llm.providers.openai]\nkind = \"openai\"\nbase_url = \"{}\"\nbackoff = \"10ms\"\n\
             {provider_extra}\n\n[llm.models.{model}]\nprovider = \"openai\"\n",
            self.base_url()
        )
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, script: &Mutex<Script>) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let at = Instant::now();
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let reply = {
        let mut script = script.lock().unwrap();
        script.seen.push(Request {
            at,
            body,
            headers: request.headers,
        });
        let default = script.default.clone();
        script.queue.pop_front().unwrap_or(default)
    };
    let mut reply = reply;
    while let Reply::Slow(wait, inner) = reply {
        std::thread::sleep(wait);
        reply = *inner;
    }
    let (status, headers, body) = match reply {
        Reply::Ok { text, usage } => (
            200,
            Vec::new(),
            json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop"
                }],
                "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1,
                          "total_tokens": usage.0 + usage.1}
            }),
        ),
        Reply::Status { status, headers } => (
            status,
            headers,
            json!({"error": {"message": format!("scripted status {status}"), "type": "test"}}),
        ),
        Reply::Slow(..) => unreachable!("unwrapped above"),
    };
    let body = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let stream = reader.get_mut();
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}
