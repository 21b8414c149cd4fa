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

/// Batches between two prunes ([`BatchStore::prune`]); the first follows
/// the first batch.
const PRUNE_EVERY: u64 = 1000;

/// Batches after a prune that failed (on PostgreSQL, a conflict with
/// another server's batch, or a lock not granted at once) until it is tried
/// again.
pub const PRUNE_AGAIN: u64 = 10;

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
    let mut until_prune = 1;
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
        // After the replies are on their way: a batch's commands never wait
        // for the prune, nor are they retried when it conflicts (a server's
        // first batch, its rights at a restart, once did both on
        // PostgreSQL and waited 0.7-1.5 s).
        until_prune -= 1;
        if until_prune == 0 {
            until_prune = match db.prune() {
                Ok(()) => PRUNE_EVERY,
                Err(e) => {
                    tracing::debug!(error = %e, "store prune failed; tried again later");
                    PRUNE_AGAIN
                }
            };
        }
    }
}

/// For tests: `db`'s store thread, its job sender and its replies.
#[cfg(test)]
pub fn spawn_for_test(
    db: impl BatchStore + Send + 'static,
) -> (std::sync::mpsc::Sender<Job>, Receiver<Done>, std::thread::JoinHandle<()>) {
    use failgroup_model::{Holder, ServerId};
    let me = super::agreement::test_identity(Holder { server: ServerId(0), incarnation: 1 });
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || run_store(db, me, jobs_rx, done_tx, || {}, Arc::default()));
    (jobs_tx, done_rx, thread)
}

/// For tests: runs `db`'s store thread over `batches` one-read batches and
/// returns once the thread has ended (each batch answered, each prune
/// due after it done).
#[cfg(test)]
pub fn run_reads(db: impl BatchStore + Send + 'static, batches: usize) -> Vec<StoreReply> {
    use failgroup_model::StoreTag;
    let (jobs, done, thread) = spawn_for_test(db);
    let mut replies = Vec::new();
    for i in 0..batches {
        jobs.send((StoreTag::Op(i as u64), StoreOp::Read { key: b"k".to_vec() })).unwrap();
        // Each batch its own: the next is sent once this one is answered.
        let (_, reply) = done.recv_timeout(std::time::Duration::from_secs(3)).expect("a batch is answered within 3 s");
        replies.push(reply);
    }
    drop(jobs);
    thread.join().unwrap();
    replies
}
