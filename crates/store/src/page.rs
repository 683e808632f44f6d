//! Keyset pagination with opaque tokens: stable under concurrent inserts, O(limit) per page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{de::DeserializeOwned, Serialize};
use sqlx::any::AnyRow;
use sqlx::AnyPool;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// What the caller asked for: at most `limit` items after `token`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub token: Option<String>,
}

impl PageRequest {
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// Decodes the token into the key of the last item of the previous page.
    pub fn after<K: DeserializeOwned>(&self) -> Result<Option<K>, crate::Error> {
        let Some(t) = &self.token else { return Ok(None) };
        let bytes = URL_SAFE_NO_PAD.decode(t).map_err(|_| bad_token())?;
        serde_json::from_slice(&bytes).map(Some).map_err(|_| bad_token())
    }
}

fn bad_token() -> crate::Error {
    crate::Error::Precondition("invalid page token; pass the `next_token` of a previous page".into())
}

/// One page of results and the token for the next, if there is more.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says there is more.
    pub fn from_rows<K: Serialize>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Page<T> {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_token = if more {
            rows.last().map(|r| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&key(r)).expect("keys serialise")))
        } else {
            None
        };
        Page { items: rows, next_token }
    }

    /// A page whose continuation key the caller computed (`None`: last page).
    pub fn from_rows_with_key(items: Vec<T>, next_key: Option<String>) -> Page<T> {
        let next_token = next_key.map(|k| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&k).expect("keys serialise")));
        Page { items, next_token }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_token: self.next_token }
    }
}

/// Fetches one page of rows keyed by a text `id` column, in id order. `sql` selects rows with
/// `prefix` bound as `$1…$n`, then `id > $n+1 … LIMIT $n+2`.
pub(crate) async fn by_id<T>(
    pool: &AnyPool,
    sql: &str,
    prefix: &[&str],
    page: &PageRequest,
    map: impl Fn(&AnyRow) -> crate::Result<T>,
    key: impl Fn(&T) -> String,
) -> crate::Result<Page<T>> {
    let after: Option<String> = page.after()?;
    let limit = page.limit();
    let mut q = sqlx::query(sql);
    for p in prefix {
        q = q.bind(*p);
    }
    let rows = q.bind(after.unwrap_or_default()).bind(limit as i64 + 1).fetch_all(pool).await?;
    let items = rows.iter().map(map).collect::<crate::Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, limit, key))
}
