//! Request bodies, queries and path segments: JSON, within the server's size limit, query
//! strings and ids, with errors the API's way (413 for too large, 400 for what does not parse).

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    "the request body is larger than the server accepts (baton serve \
                     --max-body)",
                ),
                _ => ApiError::bad_request(format!("cannot read the request body: {e}")),
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not what this endpoint takes: {e}"
            ))
        })
    }
}

/// A query string of type `T`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::from_request_parts(parts, state)
            .await
            .map(|Query(query)| QueryParams(query))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the query is not what this endpoint takes: {}",
                    e.body_text()
                ))
            })
    }
}

/// A path segment of type `T` (a run's or a webhook's id).
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::from_request_parts(parts, state)
            .await
            .map(|Path(segment)| PathParam(segment))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the path is not one this endpoint takes: {}",
                    e.body_text()
                ))
            })
    }
}
