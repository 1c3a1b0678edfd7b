//! Errors as the API answers them: a status code and a JSON body shaped as OpenAI's
//! (`{"error": {"message", "type", "code"}}`), which OpenAI's SDKs and most HTTP clients
//! already know how to read.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A machine-readable reason, such as `budget_exceeded`.
    pub code: &'static str,
    pub message: String,
    /// Seconds a client should wait before trying again (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// The message is made one line, controls escaped: it often quotes what a client sent.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: baton_core::text::one_line(&message.into()),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// OpenAI's error `type` for the status.
    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::CONFLICT => "conflict_error",
            StatusCode::TOO_MANY_REQUESTS if self.code == "budget_exceeded" => "insufficient_quota",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "api_error",
            _ => "invalid_request_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"message": self.message, "type": self.kind(), "code": self.code}
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_with_their_status_and_retry_after() {
        let response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", "full")
            .retry_after(2)
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let budget = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "budget_exceeded", "spent");
        assert_eq!(budget.kind(), "insufficient_quota");
        assert_eq!(ApiError::internal("x").kind(), "api_error");
        assert!(
            ApiError::bad_request("x")
                .into_response()
                .headers()
                .get(header::RETRY_AFTER)
                .is_none()
        );
    }
}
