//! The engine's counters for monitoring: execution and node phase transitions (counted by the
//! journal as they become durable), attempts started and finished, and how long attempts
//! waited for admission (a histogram). Every label set is fixed (phases, bucket bounds), so
//! the series count never grows with tenants or executions.

use std::collections::BTreeMap;
use std::sync::Mutex;
use tf_store::{ExecutionOp, TenantOp};

/// Upper bounds (seconds) of the admission-wait histogram.
pub const WAIT_BUCKETS: [f64; 10] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Count per bucket of [`WAIT_BUCKETS`] (not cumulative), then the overflow.
    pub counts: [u64; WAIT_BUCKETS.len() + 1],
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, v: f64) {
        let i = WAIT_BUCKETS.iter().position(|b| v <= *b).unwrap_or(WAIT_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += v;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// What the engine has done since it started.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Execution phase transitions recorded, by phase.
    pub executions: BTreeMap<String, u64>,
    /// Node phase transitions recorded, by phase.
    pub nodes: BTreeMap<String, u64>,
    pub attempts_started: u64,
    pub attempts_finished: u64,
    pub admission_wait: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    /// Counts a batch the journal has made durable.
    pub fn recorded(&self, ops: &[TenantOp]) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for op in ops {
            match op.kind() {
                ExecutionOp::Phase { phase, .. } => *c.executions.entry(phase.clone()).or_default() += 1,
                ExecutionOp::StartAttempt { .. } => {
                    c.attempts_started += 1;
                    *c.nodes.entry("RUNNING".into()).or_default() += 1;
                }
                ExecutionOp::FinishAttempt { update, .. } => {
                    c.attempts_finished += 1;
                    *c.nodes.entry(update.phase.clone()).or_default() += 1;
                }
                ExecutionOp::Node { update, .. } => *c.nodes.entry(update.phase.clone()).or_default() += 1,
                ExecutionOp::NodeWaiting { .. } => *c.nodes.entry("WAITING_FOR_RESOURCES".into()).or_default() += 1,
                ExecutionOp::CatalogPut { .. } => {}
            }
        }
    }

    /// An attempt was admitted after waiting `secs`.
    pub fn admitted_after(&self, secs: f64) {
        self.counters.lock().unwrap_or_else(|e| e.into_inner()).admission_wait.observe(secs);
    }

    pub fn snapshot(&self) -> Counters {
        self.counters.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
