//! The store thread every server runs: it takes the loop's commands,
//! batches them into one transaction per round and sends each reply back
//! after the commit.

use super::batch::{BatchStore, Done, Job};
use super::tables::Identity;
use crate::metrics::Hist;
use failgroup_model::{StoreOp, StoreReply};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

/// The replies of a batch that rolled back: every command failed with `e`.
pub fn failed_batch(batch: &[Job], e: &dyn std::fmt::Display) -> Vec<StoreReply> {
    let count = |f: fn(&StoreOp) -> bool| batch.iter().filter(|(_, op)| f(op)).count();
    tracing::warn!(
        error = %e,
        commands = batch.len(),
        acquires = count(|op| matches!(op, StoreOp::Acquire { .. })),
        renewals = count(|op| matches!(op, StoreOp::Renew { .. })),
        writes = count(|op| matches!(op, StoreOp::Write { .. })),
        "store batch failed and rolled back"
    );
    batch.iter().map(|_| StoreReply::Failed(e.to_string())).collect()
}

/// Figures of the store thread, for INFO and the metrics.
pub struct StoreStats {
    pub commits: AtomicU64,
    pub commands: AtomicU64,
    /// Each batch's time in the store (seconds) and its commands.
    pub batches: std::sync::Mutex<(Hist, Hist)>,
}

impl Default for StoreStats {
    fn default() -> StoreStats {
        StoreStats {
            commits: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            batches: std::sync::Mutex::new((Hist::new(crate::metrics::SECONDS), Hist::new(crate::metrics::SIZES))),
        }
    }
}

/// Commands per batch at most.
const MAX_BATCH: usize = 2048;

/// The store thread's loop (group commit): every command queued while the
/// previous batch ran goes into the next one. Ends when every job sender
/// is gone.
pub fn run_store(
    mut db: impl BatchStore,
    me: Identity,
    jobs: Receiver<Job>,
    done: Sender<Done>,
    wake: impl Fn(),
    stats: Arc<StoreStats>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let replies = db.run_batch(&me, &batch);
        if let Ok(mut b) = stats.batches.lock() {
            b.0.observe(started.elapsed().as_secs_f64());
            b.1.observe(batch.len() as f64);
        }
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.commands.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for ((tag, _), reply) in batch.into_iter().zip(replies) {
            if done.send((tag, reply)).is_err() {
                return;
            }
        }
        wake();
    }
}
