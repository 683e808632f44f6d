//! The project directory: every project's owner, domains and state, in memory, so resolving
//! the `{project}` of a request costs no store round trip. Loaded at start; every project
//! change made through this server updates it after the store has committed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tf_store::{Project, Store};

#[derive(Default)]
pub struct Directory {
    projects: RwLock<HashMap<String, Arc<Project>>>,
}

impl Directory {
    pub async fn load(store: &Store) -> Result<Directory, tf_store::Error> {
        let all = store.platform().all_projects().await?;
        Ok(Directory { projects: RwLock::new(all.into_iter().map(|p| (p.id.clone(), Arc::new(p))).collect()) })
    }

    /// Replaces the whole directory with the store's current projects.
    pub async fn reload(&self, store: &Store) -> Result<(), tf_store::Error> {
        let fresh = Directory::load(store).await?;
        let map = fresh.projects.into_inner().unwrap_or_else(|e| e.into_inner());
        *self.projects.write().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Project>> {
        self.projects.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    pub fn put(&self, p: Project) {
        self.projects.write().unwrap_or_else(|e| e.into_inner()).insert(p.id.clone(), Arc::new(p));
    }

    pub fn remove(&self, id: &str) {
        self.projects.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}
