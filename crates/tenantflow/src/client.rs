//! A thin HTTP client for the API: bearer credential, JSON in and out, API errors surfaced
//! with their stable code.

use crate::commands::CliError;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: String, token: Option<String>) -> Client {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tenantflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("http client");
        Client { base, token, http }
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(Method::POST, path, Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(method, path, Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn post_raw(&self, path: &str, content_type: &'static str, body: Vec<u8>) -> Result<Value, CliError> {
        self.send(Method::POST, path, Some((content_type, body))).await
    }

    /// GETs every page of a list route, up to `max` items.
    pub async fn get_all(&self, path: &str, max: Option<usize>) -> Result<Vec<Value>, CliError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &token {
                Some(t) => format!("{path}{sep}limit=1000&token={t}"),
                None => format!("{path}{sep}limit=1000"),
            };
            let page = self.get(&url).await?;
            if let Some(a) = page.get("items").and_then(Value::as_array) {
                items.extend(a.iter().cloned());
            }
            if max.is_some_and(|m| items.len() >= m) {
                items.truncate(max.unwrap_or(usize::MAX));
                return Ok(items);
            }
            match page.get("next_token").and_then(Value::as_str) {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(items),
            }
        }
    }

    /// GETs a route that answers with text (logs).
    pub async fn get_text(&self, path: &str) -> Result<String, CliError> {
        let bytes = self.send_raw(Method::GET, path, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn send(&self, method: Method, path: &str, body: Option<(&'static str, Vec<u8>)>) -> Result<Value, CliError> {
        let bytes = self.send_raw(method, path, body).await?;
        Ok(if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<bytes::Bytes, CliError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some((ct, bytes)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, ct).body(bytes);
        }
        let res = req.send().await.map_err(|e| CliError::Connect(format!("cannot reach {}: {e}", self.base)))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| CliError::Connect(format!("reading the response failed: {e}")))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = value.get("code").and_then(Value::as_str).unwrap_or("error").to_string();
        let mut message =
            value.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| status.to_string());
        if let Some(vs) = value.pointer("/details/violations").and_then(Value::as_array) {
            for v in vs.iter().skip(1) {
                let doc = v.get("document").and_then(Value::as_str).unwrap_or("");
                let field = v.get("field").and_then(Value::as_str).unwrap_or("");
                let msg = v.get("message").and_then(Value::as_str).unwrap_or("");
                message.push_str(&format!("\n  {doc}: {field}: {msg}"));
            }
        }
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            message.push_str(
                " (set TENANTFLOW_TOKEN or --token; a new server writes its admin credential to DATA_DIR/admin-token)",
            );
        }
        Err(CliError::Api { status: status.as_u16(), code, message })
    }
}
