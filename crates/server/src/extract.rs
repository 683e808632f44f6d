//! Request extractors whose failures are our JSON errors: bodies with size limits and field
//! paths in type errors, path parameters and queries with named fields.

use crate::error::{ApiError, Code};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

/// The largest body a route accepts, set for every request by the router.
#[derive(Debug, Clone, Copy)]
pub struct MaxBody(pub usize);

/// How much of an oversize body is still read (and dropped) so the client, still sending,
/// receives the 413 rather than a broken connection. Beyond this the connection is cut.
const DRAIN: usize = 64 << 20;

/// The raw body, refusing oversize payloads with 413.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        use http_body_util::BodyExt;
        let limit = req.extensions().get::<MaxBody>().map(|m| m.0).unwrap_or(16 << 20);
        let mut body = req.into_body();
        let mut buf: Vec<u8> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| ApiError::new(Code::InvalidArgument, format!("could not read the request body: {e}")))?;
            let Ok(data) = frame.into_data() else { continue };
            total = total.saturating_add(data.len());
            if total <= limit {
                buf.extend_from_slice(&data);
            } else if total > limit.saturating_add(DRAIN) {
                break;
            }
        }
        if total > limit {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!("request body is larger than the server accepts ({limit} bytes; limits.max_body_bytes)"),
            ));
        }
        Ok(Body(Bytes::from(buf)))
    }
}

/// A JSON body; type errors name the field path.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            if !(ct.starts_with("application/json") || ct.contains("+json")) {
                return Err(ApiError::new(
                    Code::UnsupportedMediaType,
                    format!("expected Content-Type application/json, got `{ct}`"),
                ));
            }
        }
        let Body(bytes) = Body::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON into `T`, naming the field path of the first error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(Code::InvalidArgument, format!("body is not valid JSON: {inner}"))
        } else {
            let field = if path == "." { "body".to_string() } else { path };
            ApiError::invalid(&field, inner)
        }
    })
}

/// Path parameters.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::new(Code::InvalidArgument, format!("bad path: {}", e.body_text())))
    }
}

/// Query parameters; errors name the parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_deserializer(q);
        match de {
            Ok(v) => Ok(QueryParams(v)),
            Err(e) => Err(ApiError::new(Code::InvalidArgument, format!("bad query string: {e}"))),
        }
    }
}

fn serde_urlencoded_deserializer<T: DeserializeOwned>(q: &str) -> Result<T, String> {
    // axum's Query uses serde_urlencoded; reuse it through axum to avoid another dependency.
    let uri: axum::http::Uri = format!("/?{q}").parse().map_err(|e| format!("{e}"))?;
    axum::extract::Query::<T>::try_from_uri(&uri).map(|q| q.0).map_err(|e| e.body_text())
}
