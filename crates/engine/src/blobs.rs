//! Blob storage for attempt inputs, outputs and logs, through `object_store`: a local directory
//! by default, any S3-compatible service by URL.
//!
//! Layout: `tenants/{tenant}/{project}/{domain}/executions/{execution}/{node}/{attempt}/…` —
//! everything of a tenant under one prefix. Invariant: a blob URI is only ever resolved for the
//! tenant whose prefix it carries ([`Blobs::resolve`]); a URI of another tenant, or of anything
//! outside the store, is refused.

use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tf_store::ExecutionKey;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob storage: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, BlobError>;

/// The blob store and the URI prefix its objects are known by.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// `file:///abs/dir` or `s3://bucket/prefix`, without a trailing slash.
    base: String,
    /// The directory of a local store (whose emptied directories are removed too).
    local: Option<PathBuf>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs").field("base", &self.base).finish()
    }
}

impl Blobs {
    /// A local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Blobs> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
        Ok(Blobs { store: Arc::new(store), base: format!("file://{}", dir.display()), local: Some(dir) })
    }

    /// `file:///dir` or `s3://bucket[/prefix]`. S3 credentials, region and endpoint come from
    /// the usual `AWS_*` environment variables (`AWS_ENDPOINT` for S3-compatible services;
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint).
    pub fn from_url(url: &str) -> Result<Blobs> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Blobs::local(Path::new(dir));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(BlobError::Config(format!(
                "unsupported blob URL `{url}`: expected file:///DIR or s3://BUCKET/PREFIX"
            )));
        };
        let rest = rest.trim_end_matches('/');
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Config(format!("blob URL `{url}` names no bucket")));
        }
        let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                s3,
                ObjPath::parse(prefix).map_err(|e| BlobError::Config(e.to_string()))?,
            ))
        };
        Ok(Blobs { store, base: format!("s3://{rest}"), local: None })
    }

    /// The prefix of one attempt's blobs.
    pub fn attempt_prefix(tenant: &str, key: &ExecutionKey, node: &str, attempt: u32) -> String {
        format!("tenants/{tenant}/{}/{}/executions/{}/{node}/{attempt}", key.project, key.domain, key.name)
    }

    /// The public URI of an object key.
    pub fn uri(&self, key: &str) -> String {
        format!("{}/{key}", self.base)
    }

    /// The object key behind `uri`, if it is one of `tenant`'s blobs.
    pub fn resolve(&self, tenant: &str, uri: &str) -> Option<String> {
        let key = uri.strip_prefix(&self.base)?.strip_prefix('/')?;
        let parsed = ObjPath::parse(key).ok()?;
        let mut parts = parsed.parts();
        if parts.next()?.as_ref() != "tenants" || parts.next()?.as_ref() != tenant {
            return None;
        }
        Some(parsed.to_string())
    }

    fn path(key: &str) -> Result<ObjPath> {
        ObjPath::parse(key).map_err(|e| BlobError::Config(e.to_string()))
    }

    /// Stores bytes; returns how many were stored.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<u64> {
        let n = bytes.len() as u64;
        self.store.put(&Self::path(key)?, PutPayload::from(bytes)).await?;
        Ok(n)
    }

    /// Uploads a local file (streamed, multipart for large files); returns its size.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<u64> {
        let mut src = tokio::fs::File::open(file).await?;
        let mut w = object_store::buffered::BufWriter::new(self.store.clone(), Self::path(key)?);
        let n = tokio::io::copy(&mut src, &mut w).await?;
        w.shutdown().await?;
        Ok(n)
    }

    /// Uploads every file under a local directory; returns how many bytes.
    pub async fn put_dir(&self, key: &str, dir: &Path) -> Result<u64> {
        let mut n = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let mut rd = tokio::fs::read_dir(&d).await?;
            while let Some(e) = rd.next_entry().await? {
                let ft = e.file_type().await?;
                let p = e.path();
                if ft.is_dir() {
                    stack.push(p);
                } else if ft.is_file() {
                    let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().into_owned();
                    n += self.put_file(&format!("{key}/{rel}"), &p).await?;
                }
            }
        }
        Ok(n)
    }

    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self.store.get(&Self::path(key)?).await?.bytes().await?.to_vec())
    }

    /// Downloads an object to a local file (streamed).
    pub async fn get_file(&self, key: &str, dest: &Path) -> Result<()> {
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut stream = self.store.get(&Self::path(key)?).await?.into_stream();
        let mut f = tokio::fs::File::create(dest).await?;
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk?).await?;
        }
        f.flush().await?;
        Ok(())
    }

    /// Copies every object under `from` to the same relative key under `to` (a copy already
    /// made is made again, harmlessly); returns how many objects.
    pub async fn copy_prefix(&self, from: &str, to: &str) -> Result<usize> {
        let prefix = Self::path(from)?;
        let metas: Vec<_> = self.store.list(Some(&prefix)).collect().await;
        let mut n = 0;
        for m in metas {
            let m = m?;
            let rel: Vec<String> =
                m.location.prefix_match(&prefix).into_iter().flatten().map(|p| p.as_ref().to_string()).collect();
            self.store.copy(&m.location, &Self::path(&format!("{to}/{}", rel.join("/")))?).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Deletes every object under a prefix; returns how many.
    pub async fn delete_prefix(&self, key: &str) -> Result<usize> {
        let prefix = Self::path(key)?;
        let metas: Vec<_> = self.store.list(Some(&prefix)).collect().await;
        let mut n = 0;
        for m in metas {
            match self.store.delete(&m?.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => n += 1,
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(root) = &self.local {
            // Objects are gone; the directories that held them go too.
            match tokio::fs::remove_dir_all(root.join(prefix.as_ref())).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(n)
    }

    /// Downloads every object under a prefix into a local directory.
    pub async fn get_dir(&self, key: &str, dest: &Path) -> Result<usize> {
        let prefix = Self::path(key)?;
        tokio::fs::create_dir_all(dest).await?;
        let metas: Vec<_> = self.store.list(Some(&prefix)).collect().await;
        let mut n = 0;
        for m in metas {
            let m = m?;
            let rel: PathBuf =
                m.location.prefix_match(&prefix).into_iter().flatten().map(|p| p.as_ref().to_string()).collect();
            self.get_file(m.location.as_ref(), &dest.join(rel)).await?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn uris_resolve_only_inside_their_tenant() {
        let dir = std::env::temp_dir().join(format!("tf-blobs-{}", std::process::id()));
        let b = Blobs::local(&dir).unwrap();
        let key = "tenants/alpha/p/d/executions/e/n/1/outputs/x";
        b.put_bytes(key, b"hello".to_vec()).await.unwrap();
        let uri = b.uri(key);
        assert_eq!(b.resolve("alpha", &uri).as_deref(), Some(key));
        assert_eq!(b.resolve("beta", &uri), None, "another tenant's blob");
        assert_eq!(b.resolve("alpha", &b.uri("tenants/alpha/../beta/x")), None, "no traversal");
        assert_eq!(b.resolve("alpha", "file:///etc/passwd"), None);
        assert_eq!(b.get_bytes(key).await.unwrap(), b"hello");
        let out = dir.join("copy");
        b.get_file(key, &out).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hello");
        assert_eq!(b.copy_prefix("tenants/alpha", "retained/alpha/1").await.unwrap(), 1);
        assert_eq!(b.get_bytes("retained/alpha/1/p/d/executions/e/n/1/outputs/x").await.unwrap(), b"hello");
        assert_eq!(b.delete_prefix("tenants/alpha").await.unwrap(), 1);
        assert!(b.get_bytes(key).await.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
