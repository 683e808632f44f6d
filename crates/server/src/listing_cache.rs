//! Registry listings (`GET /api/v1/{kind}/{project}/{domain}`) cached in memory. Entities are
//! immutable, so a listing changes only when something is registered: every registration
//! moves the registry generation, which empties this cache — at once for registrations made
//! here, within the refresh interval for those made by another server.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

const MAX_ENTRIES: usize = 50_000;

/// (tenant, project, domain, kind, limit, token)
pub type Key = (String, String, String, &'static str, u32, Option<String>);

#[derive(Default)]
pub struct ListingCache {
    generation: AtomicI64,
    entries: Mutex<HashMap<Key, (i64, Arc<Value>)>>,
}

impl ListingCache {
    pub fn new(generation: i64) -> ListingCache {
        ListingCache { generation: AtomicI64::new(generation), entries: Mutex::default() }
    }

    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Value>> {
        let g = self.generation();
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).filter(|(eg, _)| *eg == g).map(|(_, v)| v.clone())
    }

    /// Stores a listing read while the generation was `at`.
    pub fn put(&self, key: Key, at: i64, value: Arc<Value>) {
        if at != self.generation() {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (at, value));
    }

    /// Invalidates everything: something was registered.
    pub fn advance(&self, to: i64) {
        self.generation.fetch_max(to, Ordering::SeqCst);
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// After a registration through this server: invalidate before answering it.
    pub fn bump_local(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
