//! OIDC access tokens: JWTs checked against the issuer's published keys (JWKS).
//!
//! Keys are discovered from `{issuer}/.well-known/openid-configuration` unless `jwks_url` is
//! given, cached, and refreshed when a token names an unknown `kid` — at most once per
//! `MIN_REFRESH`, so a flood of made-up kids cannot hammer the issuer. Only asymmetric
//! algorithms are accepted; `alg: none` and HMAC can never verify.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Mutex as AsyncMutex;

const MIN_REFRESH: Duration = Duration::from_secs(10);

/// `auth.oidc` in the configuration.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcOptions {
    pub issuer: String,
    /// Where the keys are; discovered from the issuer when unset.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// Claim naming the user; `sub` is used when it is absent.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Accepted algorithms (default RS256, ES256, EdDSA).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_user_claim() -> String {
    "email".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_leeway() -> u64 {
    30
}

/// Who a valid token says the caller is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("identity provider unreachable: {0}")]
    Unavailable(String),
    #[error("bad OIDC configuration: {0}")]
    Config(String),
}

struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    fetched: Option<Instant>,
}

pub struct Verifier {
    opts: OidcOptions,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: Mutex<Keys>,
    refresh: AsyncMutex<()>,
}

fn parse_alg(s: &str) -> Result<Algorithm, Error> {
    let alg: Algorithm = s.parse().map_err(|_| Error::Config(format!("unknown algorithm `{s}`")))?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Err(Error::Config(format!("`{s}` is a shared-secret algorithm; OIDC needs a public-key one")))
        }
        a => Ok(a),
    }
}

impl Verifier {
    pub fn new(opts: OidcOptions) -> Result<Verifier, Error> {
        let algorithms = opts.algorithms.iter().map(|a| parse_alg(a)).collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err(Error::Config("auth.oidc.algorithms is empty".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Verifier {
            opts,
            algorithms,
            http,
            keys: Mutex::new(Keys { by_kid: HashMap::new(), fetched: None }),
            refresh: AsyncMutex::new(()),
        })
    }

    /// Checks a token; returns who it names.
    pub async fn verify(&self, token: &str) -> Result<Identity, Error> {
        let header = decode_header(token).map_err(|e| Error::Invalid(format!("malformed token: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Error::Invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let key = match self.key(&kid, header.alg) {
            Some(k) => k,
            None => {
                self.refresh_keys().await?;
                self.key(&kid, header.alg)
                    .ok_or_else(|| Error::Invalid(format!("no key `{kid}` for {:?} at the issuer", header.alg)))?
            }
        };
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_issuer(&[self.opts.issuer.as_str(), self.opts.issuer.trim_end_matches('/')]);
        v.set_audience(&[self.opts.audience.as_str()]);
        v.leeway = self.opts.leeway_seconds;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = decode::<HashMap<String, Value>>(token, &key, &v)
            .map_err(|e| Error::Invalid(format!("token rejected: {e}")))?;
        let claims = data.claims;
        let user = claims
            .get(&self.opts.user_claim)
            .and_then(Value::as_str)
            .or_else(|| claims.get("sub").and_then(Value::as_str))
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::Invalid(format!("token has neither `{}` nor `sub`", self.opts.user_claim)))?
            .to_string();
        let groups = match claims.get(&self.opts.groups_claim) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec![],
        };
        Ok(Identity { user, groups })
    }

    fn key(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.by_kid.get(kid) {
            Some((a, k)) if *a == alg => Some(k.clone()),
            _ => None,
        }
    }

    /// Fetches the key set again, unless it was fetched within `MIN_REFRESH`.
    async fn refresh_keys(&self) -> Result<(), Error> {
        let _one_at_a_time = self.refresh.lock().await;
        if self.keys.lock().unwrap_or_else(|e| e.into_inner()).fetched.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return Ok(());
        }
        let result = self.fetch().await;
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.fetched = Some(Instant::now());
        match result {
            Ok(by_kid) => {
                keys.by_kid = by_kid;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetching the issuer's keys failed");
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, Error> {
        let url = match &self.opts.jwks_url {
            Some(u) => u.clone(),
            None => {
                let disc = format!("{}/.well-known/openid-configuration", self.opts.issuer.trim_end_matches('/'));
                let doc: Value = self.get_json(&disc).await?;
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| Error::Unavailable(format!("{disc} has no jwks_uri")))?
            }
        };
        let set: JwkSet = serde_json::from_value(self.get_json(&url).await?)
            .map_err(|e| Error::Unavailable(format!("bad JWKS at {url}: {e}")))?;
        let mut out = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            let alg = match jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok()) {
                Some(a) => a,
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    _ => continue,
                },
            };
            if let Ok(k) = DecodingKey::from_jwk(jwk) {
                out.insert(kid, (alg, k));
            }
        }
        Ok(out)
    }

    async fn get_json(&self, url: &str) -> Result<Value, Error> {
        let res = self.http.get(url).send().await.map_err(|e| Error::Unavailable(format!("{url}: {e}")))?;
        if !res.status().is_success() {
            return Err(Error::Unavailable(format!("{url}: HTTP {}", res.status())));
        }
        res.json().await.map_err(|e| Error::Unavailable(format!("{url}: {e}")))
    }
}
