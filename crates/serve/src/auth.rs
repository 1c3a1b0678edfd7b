//! Who is asking: the API key in `Authorization: Bearer <key>`, and what it may do.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use baton_budget::Ledger;

use crate::app::App;
use crate::error::ApiError;
use crate::keys::{KeyRecord, Scope};

/// The key a request was made with, and the ledger it spends from.
pub struct Caller {
    pub key: KeyRecord,
    pub account: Arc<Ledger>,
}

impl Caller {
    /// Refuses (403) a key without `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.key.scopes.allow(scope) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing_scope",
            format!(
                "key '{}' lacks the '{}' scope (it has {}): make a key with \
                 `baton keys create --scopes {}`",
                self.key.name,
                scope.name(),
                self.key.scopes,
                scope.name()
            ),
        ))
    }

    /// The idempotency scope and journal name of requests made with this key.
    pub fn name(&self) -> String {
        format!("key:{}", self.key.id)
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let unauthorized =
            |code, message: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, message);
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "missing_api_key",
                "no API key: send `Authorization: Bearer <key>` (make a key with \
                 `baton keys create`)",
            ));
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        let key = app
            .keys
            .find(secret)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .ok_or_else(|| {
                unauthorized(
                    "invalid_api_key",
                    "the API key is unknown or revoked: `baton keys ls` lists the live ones",
                )
            })?;
        Ok(Caller {
            account: app.account(&key),
            key,
        })
    }
}
