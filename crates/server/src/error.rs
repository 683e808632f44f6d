//! The public error shape `{"code", "message", "details"}` and the one table that maps each
//! stable code to its HTTP status. Internal details go to the log, never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// Stable error codes. Clients may branch on these; they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    InvalidArgument,
    ValidationFailed,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    MethodNotAllowed,
    AlreadyExists,
    Conflict,
    ProjectArchived,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Internal,
    Unavailable,
}

impl Code {
    /// The one place a code meets its status.
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::ValidationFailed => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::AlreadyExists | Code::Conflict | Code::ProjectArchived => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid_argument",
            Code::ValidationFailed => "validation_failed",
            Code::Unauthenticated => "unauthenticated",
            Code::PermissionDenied => "permission_denied",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::AlreadyExists => "already_exists",
            Code::Conflict => "conflict",
            Code::ProjectArchived => "project_archived",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::RateLimited => "rate_limited",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
        }
    }
}

/// An error as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), details: None }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// 400 naming the offending field.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::new(Code::InvalidArgument, format!("{field}: {message}"))
            .with_details(serde_json::json!({"field": field}))
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, what)
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Unauthenticated, message)
    }

    pub fn internal() -> ApiError {
        ApiError::new(Code::Internal, "internal error; the server log has details")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let mut res = (status, axum::Json(&self)).into_response();
        if self.code == Code::Unauthenticated {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.details.as_ref().is_some_and(|d| d["admission"] == serde_json::json!(true)) {
            // An authorisation refusal made by a handler: the audit layer records it.
            let tenant = self.details.as_ref().and_then(|d| d["tenant"].as_str()).map(str::to_string);
            res.extensions_mut().insert(crate::audit::Refusal { tenant });
        }
        res
    }
}

impl From<tf_store::Error> for ApiError {
    fn from(e: tf_store::Error) -> Self {
        use tf_store::Error as E;
        match e {
            E::Conflict(m) if m.contains("already exists") => ApiError::new(Code::AlreadyExists, m),
            E::Conflict(m) => ApiError::new(Code::Conflict, m),
            E::NotFound(m) => ApiError::not_found(m),
            E::Precondition(m) => ApiError::new(Code::InvalidArgument, m),
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

impl From<tf_model::Violations> for ApiError {
    fn from(v: tf_model::Violations) -> Self {
        let details = serde_json::json!({"violations": v.0});
        ApiError::new(Code::ValidationFailed, v.to_string()).with_details(details)
    }
}
