//! Test fixture: asks for an LLM completion, a call to another tool and an outgoing HTTP
//! request, and returns what it was told. With nothing granted, all three are refused.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use baton::plugin::types::{CompletionRequest, Message, Role};
use baton::plugin::{llm, tools};
use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

struct Prober;

impl Guest for Prober {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "prober".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Reports what the host answers to an LLM call, a tool call and an HTTP \
                          request."
                .into(),
            input_schema: r#"{"type": "object"}"#.into(),
            output_schema: r#"{"type": "object", "required": ["llm", "tools", "http"]}"#.into(),
        }
    }

    fn invoke(_input: String) -> Result<String, ToolError> {
        let llm = llm::complete(&CompletionRequest {
            model: "gpt-4o".into(),
            messages: vec![Message {
                role: Role::User,
                content: "hello".into(),
            }],
            max_tokens: 16,
            temperature: 0.0,
            stop: vec![],
            seed: None,
            idempotency_key: None,
        });
        let tools = tools::call("calc", r#"{"expression": "1"}"#);
        Ok(serde_json::json!({
            "llm": format!("{:?}", llm.map(|r| r.text)),
            "tools": format!("{tools:?}"),
            "http": http_get(),
        })
        .to_string())
    }
}

/// Sends GET http://127.0.0.1:9/ and describes what came back.
fn http_get() -> String {
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some("127.0.0.1:9"));
    let _ = request.set_path_with_query(Some("/"));
    match wasip2::http::outgoing_handler::handle(request, None) {
        Err(code) => format!("refused: {code:?}"),
        Ok(response) => {
            response.subscribe().block();
            match response.get() {
                Some(Ok(Err(code))) => format!("refused: {code:?}"),
                Some(Ok(Ok(r))) => format!("status {}", r.status()),
                other => format!("unexpected: {other:?}"),
            }
        }
    }
}

export!(Prober);
