//! First start: an empty instance mints a platform-admin credential and writes it, mode 0600,
//! to `DATA_DIR/admin-token`. There is never an open, unauthenticated default.

use crate::StartError as Error;
type Result<T> = std::result::Result<T, Error>;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tf_store::Store;

pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Mints the platform-admin credential if the store has none; returns the file written.
pub async fn ensure_admin_credential(store: &Store, data_dir: &Path) -> Result<Option<PathBuf>> {
    let platform = store.platform();
    let existing =
        platform.count_tokens("platform_admin").await.map_err(|e| Error(format!("cannot read credentials: {e}")))?;
    if existing > 0 {
        return Ok(None);
    }
    let token = platform
        .create_token("platform_admin", "platform-admin", None, "created on first start", None)
        .await
        .map_err(|e| Error(format!("cannot create the admin credential: {e}")))?;
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_secret(&path, &token.secret).map_err(|e| Error(format!("cannot write {}: {e}", path.display())))?;
    tracing::warn!(path = %path.display(), "first start: wrote the platform-admin credential; keep it secret");
    Ok(Some(path))
}

/// Writes `secret` to `path` with mode 0600, replacing any stale file atomically.
fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
