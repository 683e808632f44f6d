//! The journal: the one writer of execution records. Ops are applied in the order they were
//! sent, many per transaction (group commit), so a fan-out of a thousand attempts costs a
//! handful of commits, not two thousand.
//!
//! Invariant: ops reach the store in send order and a batch commits whole, so what survives a
//! crash is always a prefix of what the engine decided. [`Journal::commit`] returns only once
//! its ops (and every op sent before them) are durable.

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tf_store::{Store, TenantOp};
use tokio::sync::{mpsc, oneshot};

/// Most ops in one transaction.
const MAX_BATCH: usize = 4096;

struct Entry {
    ops: Vec<TenantOp>,
    done: Option<oneshot::Sender<()>>,
}

#[derive(Clone)]
pub struct Journal {
    tx: mpsc::UnboundedSender<Entry>,
}

impl Journal {
    /// Starts the writer task.
    pub fn start(store: Store, metrics: Arc<Metrics>) -> (Journal, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_loop(store, rx, metrics));
        (Journal { tx }, task)
    }

    /// Queues ops; they commit in order with whatever else is queued.
    pub fn send(&self, ops: Vec<TenantOp>) {
        if !ops.is_empty() {
            let _ = self.tx.send(Entry { ops, done: None });
        }
    }

    /// Queues ops and waits until they are durable. False if the journal has stopped.
    pub async fn commit(&self, ops: Vec<TenantOp>) -> bool {
        self.queue(ops).await
    }

    /// Queues ops now, ahead of anything sent later; the future says when they are durable
    /// (false if the journal has stopped).
    pub fn queue(&self, ops: Vec<TenantOp>) -> impl std::future::Future<Output = bool> + Send + 'static {
        let (done, wait) = oneshot::channel();
        let sent = self.tx.send(Entry { ops, done: Some(done) }).is_ok();
        async move { sent && wait.await.is_ok() }
    }
}

async fn write_loop(store: Store, mut rx: mpsc::UnboundedReceiver<Entry>, metrics: Arc<Metrics>) {
    let mut ops: Vec<TenantOp> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let take = |e: Entry, ops: &mut Vec<TenantOp>, waiters: &mut Vec<oneshot::Sender<()>>| {
            ops.extend(e.ops);
            waiters.extend(e.done);
        };
        take(first, &mut ops, &mut waiters);
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(e) => take(e, &mut ops, &mut waiters),
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(50);
        loop {
            match store.apply_execution_ops(&ops).await {
                Ok(()) => break,
                Err(e) => {
                    // Nothing is dropped: the same batch is retried until the store takes it.
                    tracing::error!(error = %e, ops = ops.len(), "cannot record execution progress; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        metrics.recorded(&ops);
        ops.clear();
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
