//! A short-lived cache of authenticated platform credentials, so a request does not pay a
//! store round trip to learn who is calling. Revocations made through this server evict at
//! once; a revocation made through another replica is honoured within `TTL`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tf_store::TokenInfo;

pub const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (TokenInfo, Instant)>>,
}

impl TokenCache {
    /// The cached credential for this secret's hash, if fresh and not expired.
    pub fn get(&self, hash: &str, now_ms: i64) -> Option<TokenInfo> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (info, at) = map.get(hash)?;
        if at.elapsed() > TTL || info.expires_at.is_some_and(|e| e <= now_ms) {
            return None;
        }
        Some(info.clone())
    }

    pub fn put(&self, hash: String, info: TokenInfo) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() <= TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(hash, (info, Instant::now()));
    }

    /// Forgets every credential of a tenant (after its credentials were revoked).
    pub fn evict_tenant(&self, tenant: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (i, _)| i.tenant.as_deref() != Some(tenant));
    }

    /// Forgets a credential by id (after a revocation).
    pub fn evict_id(&self, id: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (i, _)| i.id != id);
    }
}
