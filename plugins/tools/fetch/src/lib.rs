//! `fetch`: one HTTP request through wasi:http, within the egress its policy grants. Returns
//! the status, headers and body (as text); a refused or failed request is a tool error that
//! says why. Redirects are returned as they are, not followed.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "url": { "type": "string", "pattern": "^https?://" },
    "method": { "type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] },
    "headers": { "type": "object", "additionalProperties": { "type": "string" } },
    "body": { "type": "string" }
  },
  "required": ["url"],
  "additionalProperties": false
}"#;

const OUTPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "status": { "type": "integer" },
    "headers": { "type": "object" },
    "body": { "type": "string" }
  },
  "required": ["status", "headers", "body"],
  "additionalProperties": false
}"#;

#[derive(Deserialize)]
struct Input {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
}

struct Fetch;

impl Guest for Fetch {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "fetch".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sends one HTTP request (GET by default) and returns the status, \
                          headers and body. Only hosts the policy grants are reachable."
                .into(),
            input_schema: INPUT_SCHEMA.into(),
            output_schema: OUTPUT_SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let (status, headers, body) = send(&input)?;
        Ok(serde_json::json!({ "status": status, "headers": headers, "body": body }).to_string())
    }
}

fn send(input: &Input) -> Result<(u16, serde_json::Value, String), ToolError> {
    let invalid = |what: &str| ToolError::InvalidInput(format!("{what}: {}", input.url));
    let (scheme, rest) = input
        .url
        .split_once("://")
        .ok_or_else(|| invalid("not a URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    for (name, value) in &input.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| ToolError::InvalidInput(format!("header '{name}': {e:?}")))?;
    }
    let request = OutgoingRequest::new(headers);
    let method = match input.method.as_deref().unwrap_or("GET") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let set = |ok: Result<(), ()>, what: &str| ok.map_err(|()| invalid(what));
    set(request.set_method(&method), "bad method")?;
    set(request.set_scheme(Some(&scheme)), "bad scheme")?;
    set(request.set_authority(Some(authority)), "bad authority")?;
    set(request.set_path_with_query(Some(path)), "bad path")?;
    let outgoing = request.body().map_err(|()| invalid("no request body"))?;
    let pending = outgoing_handler::handle(request, None)
        .map_err(|code| ToolError::Failed(describe(&code)))?;
    // A refused request closes the body stream: the response then carries the reason, so a
    // write error is reported only if the response has none.
    let written = outgoing
        .write()
        .map_err(|()| "no body stream".to_string())
        .and_then(|stream| match &input.body {
            Some(body) => stream
                .blocking_write_and_flush(body.as_bytes())
                .map_err(|e| format!("writing the body: {e:?}")),
            None => Ok(()),
        });
    let finished = OutgoingBody::finish(outgoing, None).map_err(|code| describe(&code));
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(ToolError::Failed(describe(&code))),
        other => return Err(ToolError::Failed(format!("no response: {other:?}"))),
    };
    written.and(finished).map_err(ToolError::Failed)?;
    let status = response.status();
    let headers: serde_json::Map<String, serde_json::Value> = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned().into()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| invalid("no response body"))?;
    let stream = incoming
        .stream()
        .map_err(|()| invalid("no response stream"))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(ToolError::Failed(format!("reading the body: {e:?}"))),
        }
    }
    Ok((
        status,
        headers.into(),
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

export!(Fetch);

/// What a wasi:http error code means, in words, with its name in the interface (`error-code`).
fn describe(code: &ErrorCode) -> String {
    if matches!(code, ErrorCode::HttpRequestDenied) {
        return "the host denied the request (HTTP-request-denied): the policy grants no \
                egress to this destination, or not for the data this call carries; the run's \
                `denied:` lines say which rule, and `baton policy explain` what it grants"
            .into();
    }
    // `ConnectionRefused` → `connection-refused`, with the payload when there is one.
    let debug = format!("{code:?}");
    let debug = debug.strip_prefix("ErrorCode::").unwrap_or(&debug);
    let (name, payload) = debug.split_once('(').unwrap_or((debug, ""));
    let mut kebab = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            kebab.push('-');
        }
        kebab.push(c.to_ascii_lowercase());
    }
    let payload = payload.strip_suffix(')').unwrap_or(payload);
    let payload = payload
        .strip_prefix("Some(")
        .map_or(payload, |p| p.strip_suffix(')').unwrap_or(p));
    match payload {
        "" | "None" => format!("the request failed ({kebab})"),
        payload => format!("the request failed ({kebab}: {payload})"),
    }
}
