//! Webhooks: a key registers URLs (`POST /v1/webhooks`) and each of its runs, when it ends,
//! is delivered to them as a signed message per the Standard Webhooks scheme
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`), retried with backoff until a 2xx answer. Deliveries go out
//! through the same gate and egress rules as a component's requests: the policy's
//! `[plugins.webhooks.net]` says where they may go, and each delivery is journaled as a run
//! (`command` "webhook") whose chain holds every attempt.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use baton_effects::NoSecrets;
use baton_effects::http::{Egress, code, encode_body, failed};
use baton_journal::event::{EventKind, HttpOutcome, HttpRequestRecord};
use baton_policy::net::default_port;
use baton_runtime::RunStart;
use bytes::Bytes;
use rand::Rng;
use rusqlite::{Connection, params};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::body::{JsonBody, PathParam};
use crate::db::{self, Db};
use crate::error::ApiError;
use crate::keys::Scope;

/// The component name whose `[plugins.<name>.net]` grant governs deliveries.
pub const EGRESS_NAME: &str = "webhooks";

/// Attempts per delivery, and the wait before the second (doubling after each).
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// A registered webhook.
#[derive(Debug, Clone)]
pub struct Hook {
    pub id: String,
    pub key_id: String,
    pub url: String,
    /// `whsec_` and the base64 of the signing key.
    pub secret: String,
}

pub struct HookTable {
    db: Db,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL
);
";

impl HookTable {
    pub fn open(path: &Path) -> Result<Self, String> {
        Ok(Self {
            db: Db::open(path, "the webhook table", SCHEMA)?,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.conn()
    }

    fn failed(&self, e: rusqlite::Error) -> String {
        self.db.failed(e)
    }

    fn insert(&self, hook: &Hook) -> Result<(), String> {
        self.conn()
            .execute(
                "INSERT INTO webhooks (id, key_id, url, secret, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hook.id, hook.key_id, hook.url, hook.secret, db::now()],
            )
            .map(drop)
            .map_err(|e| self.failed(e))
    }

    /// The webhooks of key `key_id`.
    pub fn of_key(&self, key_id: &str) -> Result<Vec<Hook>, String> {
        let conn = self.conn();
        let mut query = conn
            .prepare("SELECT id, key_id, url, secret FROM webhooks WHERE key_id = ?1 ORDER BY id")
            .map_err(|e| self.failed(e))?;
        let rows = query
            .query_map([key_id], |row| {
                Ok(Hook {
                    id: row.get(0)?,
                    key_id: row.get(1)?,
                    url: row.get(2)?,
                    secret: row.get(3)?,
                })
            })
            .map_err(|e| self.failed(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.failed(e))
    }

    fn delete(&self, key_id: &str, id: &str) -> Result<bool, String> {
        self.conn()
            .execute(
                "DELETE FROM webhooks WHERE id = ?1 AND key_id = ?2",
                params![id, key_id],
            )
            .map(|n| n > 0)
            .map_err(|e| self.failed(e))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    url: String,
}

/// `POST /v1/webhooks`: registers a URL for the caller's runs; answers with its signing
/// secret (shown this once).
pub async fn register(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<Register>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Runs)?;
    egress(&app, &body.url)?;
    let mut key = [0u8; 24];
    rand::rng().fill_bytes(&mut key);
    let hook = Hook {
        id: format!("wh_{}", baton_runtime::run::new_run_id()),
        key_id: caller.key.id.clone(),
        url: body.url,
        secret: format!("whsec_{}", BASE64.encode(key)),
    };
    app.hooks.insert(&hook).map_err(ApiError::internal)?;
    let answer = json!({"id": hook.id, "url": hook.url, "secret": hook.secret});
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /v1/webhooks`: the caller's webhooks (without their secrets).
pub async fn list(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Runs)?;
    let hooks = app
        .hooks
        .of_key(&caller.key.id)
        .map_err(ApiError::internal)?;
    let data: Vec<Value> = hooks
        .iter()
        .map(|h| json!({"id": h.id, "url": h.url}))
        .collect();
    Ok(Json(json!({"data": data})))
}

/// `DELETE /v1/webhooks/{id}`.
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Runs)?;
    match app.hooks.delete(&caller.key.id, &id) {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found(format!(
            "no webhook '{id}' of this key"
        ))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// What the policy allows a delivery to `url`, or why it may not go there (403).
fn egress(app: &App, url: &str) -> Result<Egress, ApiError> {
    let refused = |why: String| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "egress_denied",
            format!("webhook URL {url}: {why}"),
        )
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| ApiError::bad_request(format!("'{url}' is not a URL")))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    let (Some(host), Some(port)) = (uri.host(), uri.port_u16().or_else(|| default_port(scheme)))
    else {
        return Err(ApiError::bad_request(format!(
            "'{url}' is not an http or https URL with a host"
        )));
    };
    let grants = app.host.policy().grants_for(EGRESS_NAME, "");
    let Some(grant) = grants.net else {
        return Err(refused(format!(
            "the server's policy allows webhooks nowhere: add [plugins.{EGRESS_NAME}.net] \
             allow = [\"{scheme}://{host}:{port}\"] to it"
        )));
    };
    let Some(pattern) = grant.pattern_for(scheme, host, port) else {
        return Err(refused(format!(
            "{scheme}://{host}:{port} matches no pattern of [plugins.{EGRESS_NAME}.net] allow \
             in {}",
            grant.source
        )));
    };
    if !grant.methods.iter().any(|m| m == "POST") {
        return Err(refused(format!(
            "[plugins.{EGRESS_NAME}.net] methods do not include POST"
        )));
    }
    Ok(Egress {
        pattern: pattern.clone(),
        max_response_bytes: grant.max_response_bytes,
        timeout: grant.timeout,
        ca: grant.ca.clone(),
    })
}

/// Delivers the end of run `run` to every webhook of key `key_id`, each in a task of its
/// own.
pub fn deliver_run(app: &Arc<App>, key_id: &str, run: &str, status: &str, result: Option<Value>) {
    let hooks = match app.hooks.of_key(key_id) {
        Ok(hooks) => hooks,
        Err(e) => return tracing::error!("{e}"),
    };
    let payload = json!({
        "type": "run.finished",
        "timestamp": db::now(),
        "data": {"id": run, "status": status, "result": result},
    });
    let body: Bytes = payload.to_string().into();
    for hook in hooks {
        let (app, body) = (app.clone(), body.clone());
        app.runs.tasks.clone().spawn(async move {
            deliver(&app, &hook, body).await;
        });
    }
}

/// One message to one webhook, attempted until a 2xx answer or `ATTEMPTS` attempts, all
/// journaled as one run.
async fn deliver(app: &App, hook: &Hook, body: Bytes) {
    let egress = match egress(app, &hook.url) {
        Ok(egress) => egress,
        Err(e) => return tracing::warn!("not delivered to webhook {}: {}", hook.id, e.message),
    };
    let message = format!("msg_{}", baton_runtime::run::new_run_id());
    let (mut run, _) = app.host.start_run_as(RunStart::new("webhook"));
    let gate = run
        .start_step("deliver", EGRESS_NAME, "", Arc::new(NoSecrets))
        .expect("a live run records, it cannot diverge");
    let (body_digest, encoded) = encode_body(&body);
    let mut delivered = false;
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let timestamp = db::unix_seconds().to_string();
        let signature = sign(&hook.secret, &message, &timestamp, &body);
        let request = HttpRequestRecord {
            method: "POST".into(),
            url: hook.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("user-agent".into(), "baton-webhooks".into()),
                ("webhook-id".into(), message.clone()),
                ("webhook-timestamp".into(), timestamp),
                ("webhook-signature".into(), signature),
            ],
            body: encoded.clone(),
            body_digest: body_digest.clone(),
        };
        let slot = gate.reserve(EventKind::Http {
            request: request.clone(),
            outcome: failed(code::ABANDONED, "the server stopped before it was sent"),
        });
        let outcome = gate.http(slot, request, body.clone(), &egress).await;
        let answered = match outcome {
            Some(HttpOutcome::Response { status, .. }) => Some(status),
            _ => None,
        };
        metrics::counter!(
            "baton_webhook_attempts_total",
            "outcome" => match answered {
                Some(200..=299) => "delivered",
                Some(_) => "refused",
                None => "failed",
            }
        )
        .increment(1);
        if answered.is_some_and(|s| (200..300).contains(&s)) {
            delivered = true;
            break;
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    if !delivered {
        tracing::warn!(
            "webhook {} ({}) did not accept message {message} in {ATTEMPTS} attempts",
            hook.id,
            hook.url
        );
    }
    let _ = run.end_step("deliver", &*gate);
    let _ = run.finish(if delivered { "ok" } else { "failed" });
}

/// The Standard Webhooks signature of a message: `v1,` and the base64 HMAC-SHA256, keyed
/// by the secret's bytes, of `id.timestamp.body`.
fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key_bytes = BASE64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secrets are made here, in base64");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut signed = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("v1,{}", BASE64.encode(hmac::sign(&key, &signed).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
