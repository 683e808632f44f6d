//! Store errors. Messages are safe to show to the caller that asked; backend details are kept
//! for the log only.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The row exists with different content, or a uniqueness rule was hit.
    #[error("{0}")]
    Conflict(String),
    /// The thing addressed does not exist (in this tenant).
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but not acceptable in the current state.
    #[error("{0}")]
    Precondition(String),
    /// A stored value could not be read back: a bug or a hand-edited database.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Backend(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl Error {
    /// Whether this is a uniqueness violation reported by the backend.
    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        match e {
            sqlx::Error::Database(d) => {
                d.is_unique_violation()
                    || d.code().is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                    || d.message().contains("UNIQUE constraint failed")
            }
            _ => false,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Corrupt(e.to_string())
    }
}
