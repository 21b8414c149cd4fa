//! The core's store semantics over database tables, written once for every
//! database: a backend provides row operations ([`Tables`]); [`run`] turns a
//! [`StoreOp`] into them exactly as the model-checked `MemStore` does
//! (`store::apply_write` decides every write's effect for both).
//!
//! Tables: `kv` (key, value, version, expiry), `rights` (each slot's serving
//! right: holder, fencing epoch, lease expiry), `applied` (replies of applied
//! writes, so a retried write is applied at most once). Times are the
//! store's clock in Unix milliseconds, taken once per transaction.

use failgroup_model::{
    apply_write, Applied, Epoch, OpResult, ReqId, ServerId, Slot, StoreOp, StoreReply, StoreTag, Time, Write,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

/// How long a write's reply is kept for deduplication. Retries of one
/// request end well within it (they are bounded by request timeouts).
pub const APPLIED_KEEP_MS: u64 = 10 * 60 * 1000;

/// A `kv` row: value, version, expiry.
pub type Row = (Vec<u8>, u64, Option<u64>);
/// A `rights` row: holder, epoch, expiry.
pub type RightRow = (ServerId, Epoch, u64);

/// Row operations of one transaction.
pub trait Tables {
    type Error;
    /// The row of `key`, expired or not.
    fn kv_get(&mut self, key: &[u8]) -> Result<Option<Row>, Self::Error>;
    /// Writes `key` under a new version (greater than every earlier one), returned.
    fn kv_put(&mut self, key: &[u8], value: &[u8], expiry: Option<u64>) -> Result<u64, Self::Error>;
    /// Deletes `key`; returns a new version, as a write does.
    fn kv_del(&mut self, key: &[u8]) -> Result<u64, Self::Error>;
    /// The rights rows of `slots` (slot -> holder, epoch, expiry); a slot
    /// never acquired has none.
    fn rights(&mut self, slots: &[Slot]) -> Result<HashMap<u16, RightRow>, Self::Error>;
    /// Gives `holder` each slot under its epoch until `expires`.
    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: ServerId, expires: u64) -> Result<(), Self::Error>;
    /// Slot -> epoch of the rights `holder` holds at `now`.
    fn rights_of(&mut self, holder: ServerId, now: u64) -> Result<HashMap<u16, u64>, Self::Error>;
    /// Extends every right `holder` holds at `now` until `until`.
    fn extend_all(&mut self, holder: ServerId, now: u64, until: u64) -> Result<(), Self::Error>;
    fn extend(&mut self, slots: &[Slot], until: u64) -> Result<(), Self::Error>;
    /// Ends `holder`'s right on each slot under its epoch at `now`, where it holds it.
    fn release(&mut self, rights: &[(Slot, Epoch)], holder: ServerId, now: u64) -> Result<(), Self::Error>;
    fn applied(&mut self, req: ReqId) -> Result<Option<Vec<u8>>, Self::Error>;
    fn record(&mut self, req: ReqId, result: &[u8], now: u64) -> Result<(), Self::Error>;
    /// Deletes keys expired at `now` and replies older than `before`.
    fn prune(&mut self, now: u64, before: u64) -> Result<(), Self::Error>;
}

/// A live key: expired keys are absent.
fn live<T: Tables>(t: &mut T, key: &[u8], now: Time) -> Result<Option<Row>, T::Error> {
    Ok(t.kv_get(key)?.filter(|(_, _, exp)| exp.is_none_or(|e| now.0 < e)))
}

/// What a reply says of a key: value, version, whether it expires.
type Current = (Option<Vec<u8>>, u64, bool);

fn current<T: Tables>(t: &mut T, key: &[u8], now: Time) -> Result<Current, T::Error> {
    Ok(match live(t, key, now)? {
        Some((v, ver, exp)) => (Some(v), ver, exp.is_some()),
        None => (None, 0, false),
    })
}

fn write<T: Tables>(t: &mut T, key: &[u8], w: Write, now: Time) -> Result<StoreReply, T::Error> {
    let old = live(t, key, now)?.map(|(v, _, exp)| (v, exp.map(Time)));
    let (value, expiry, result) = match apply_write(old, w, now) {
        Applied::Write { value, expiry, result } => (value, expiry.map(|t| t.0), result),
        Applied::NotSet => {
            let (value, version, expiring) = current(t, key, now)?;
            return Ok(StoreReply::Written { version, value, expiring, result: OpResult::NotSet });
        }
        Applied::Rejected(e) => return Ok(StoreReply::Rejected(e)),
    };
    let version = match &value {
        Some(v) => t.kv_put(key, v, expiry)?,
        None => t.kv_del(key)?,
    };
    Ok(StoreReply::Written { version, value, expiring: expiry.is_some(), result })
}

/// Carries out one store command of server `from` at the store's time `now`.
pub fn run<T: Tables>(t: &mut T, from: ServerId, op: StoreOp, now: Time) -> Result<StoreReply, T::Error> {
    Ok(match op {
        StoreOp::Read { key } => {
            let (value, version, expiring) = current(t, &key, now)?;
            StoreReply::Read { value, version, expiring }
        }
        StoreOp::Ttl { key } => StoreReply::Ttl(match live(t, &key, now)? {
            None => -2,
            Some((_, _, None)) => -1,
            Some((_, _, Some(e))) => e.saturating_sub(now.0) as i64,
        }),
        StoreOp::Write { slot, fence, req, key, write: w } => {
            match t.applied(req)?.and_then(|b| postcard::from_bytes::<OpResult>(&b).ok()) {
                Some(OpResult::Err(e)) => return Ok(StoreReply::Rejected(e)),
                Some(result) => {
                    // Applied before: the same answer, with the key as it is now.
                    let (value, version, expiring) = current(t, &key, now)?;
                    return Ok(StoreReply::Written { version, value, expiring, result });
                }
                None => {}
            }
            if let Some(epoch) = fence {
                let right = t.rights(&[slot])?.remove(&slot.0);
                let holds = matches!(right, Some((h, e, exp)) if h == from && e == epoch && now.0 < exp);
                if !holds {
                    return Ok(StoreReply::Fenced);
                }
            }
            let reply = write(t, &key, w, now)?;
            // Record the answer for retries (a rejection as an error).
            let result = match &reply {
                StoreReply::Written { result, .. } => Some(result.clone()),
                StoreReply::Rejected(e) => Some(OpResult::Err(e.clone())),
                _ => None,
            };
            if let Some(result) = result {
                let blob = postcard::to_allocvec(&result).expect("encoding to a Vec cannot fail");
                t.record(req, &blob, now.0)?;
            }
            reply
        }
        StoreOp::Acquire { slots, lease } => {
            let (mut granted, mut held) = (Vec::new(), Vec::new());
            let current = t.rights(&slots)?;
            for slot in slots {
                match current.get(&slot.0) {
                    Some((holder, _, expires)) if *holder != from && now.0 < *expires => held.push((slot, *holder)),
                    // Always a new epoch: writes under the old one are fenced.
                    right => granted.push((slot, Epoch(right.map_or(0, |r| r.1 .0) + 1))),
                }
            }
            t.set_rights(&granted, from, now.0.saturating_add(lease))?;
            StoreReply::Acquired { granted, held }
        }
        StoreOp::Renew { rights, lease } => {
            // Read this holder's rights once, then extend the valid ones.
            let mine = t.rights_of(from, now.0)?;
            let (kept, lost): (Vec<_>, Vec<_>) = rights.into_iter().partition(|(s, e)| mine.get(&s.0) == Some(&e.0));
            let until = now.0.saturating_add(lease);
            if kept.len() == mine.len() {
                t.extend_all(from, now.0, until)?;
            } else {
                t.extend(&kept.iter().map(|(s, _)| *s).collect::<Vec<_>>(), until)?;
            }
            StoreReply::Renewed { kept, lost }
        }
        StoreOp::Release { rights } => {
            t.release(&rights, from, now.0)?;
            StoreReply::Released
        }
    })
}

/// Runs a batch's commands in order; the first error stops it (the caller
/// rolls the transaction back and fails the whole batch).
pub fn run_all<'a, T: Tables>(
    t: &mut T,
    from: ServerId,
    ops: impl Iterator<Item = &'a StoreOp>,
    now: Time,
) -> Result<Vec<StoreReply>, T::Error> {
    ops.map(|op| run(t, from, op.clone(), now)).collect()
}

pub type Job = (StoreTag, StoreOp);
pub type Done = (StoreTag, StoreReply);

/// A database as a server's store thread uses it: a batch of commands in
/// one transaction, a reply for each, given only after the commit (all
/// `Failed` if it rolled back).
pub trait BatchStore {
    fn run_batch(&mut self, from: ServerId, batch: &[Job]) -> Vec<StoreReply>;
}

impl<T: BatchStore + ?Sized> BatchStore for Box<T> {
    fn run_batch(&mut self, from: ServerId, batch: &[Job]) -> Vec<StoreReply> {
        (**self).run_batch(from, batch)
    }
}

/// The replies of a batch that rolled back: every command failed with `e`.
pub fn failed_batch(batch: &[Job], e: &dyn std::fmt::Display) -> Vec<StoreReply> {
    tracing::warn!(error = %e, commands = batch.len(), "store batch failed and rolled back");
    batch.iter().map(|_| StoreReply::Failed(e.to_string())).collect()
}

/// Figures of the store thread, for INFO.
#[derive(Default)]
pub struct StoreStats {
    pub commits: AtomicU64,
    pub commands: AtomicU64,
}

/// Commands per batch at most.
const MAX_BATCH: usize = 2048;

/// The store thread's loop (group commit): every command queued while the
/// previous batch ran goes into the next one. Ends when every job sender
/// is gone.
pub fn run_store(
    mut db: impl BatchStore,
    from: ServerId,
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
        let replies = db.run_batch(from, &batch);
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

/// Commands whose replies every database must give exactly as `MemStore`
/// does: fencing, at-most-once retries, versions, rights (`from`, command, time).
#[cfg(test)]
pub fn agreement_script() -> Vec<(ServerId, StoreOp, Time)> {
    use failgroup_model::{ClientId, SetCond, SetOpts};
    let req = |seq| ReqId { client: ClientId(u64::MAX - 1), seq };
    let k = || b"k".to_vec();
    let w = |seq, write| StoreOp::Write { slot: Slot(1), fence: Some(Epoch(1)), req: req(seq), key: k(), write };
    let ops = vec![
        (ServerId(0), StoreOp::Acquire { slots: vec![Slot(1)], lease: 100 }),
        (ServerId(1), StoreOp::Acquire { slots: vec![Slot(1)], lease: 100 }),
        (ServerId(0), w(1, Write::Set(b"5".to_vec()))),
        (ServerId(0), w(2, Write::Incr(2))),
        (ServerId(0), w(2, Write::Incr(2))),
        (ServerId(1), w(3, Write::Del)),
        (ServerId(0), w(5, Write::SetWith(b"x".to_vec(), SetOpts { ttl_ms: None, cond: SetCond::IfAbsent }))),
        (ServerId(0), w(6, Write::SetWith(b"t".to_vec(), SetOpts { ttl_ms: Some(3), cond: SetCond::Always }))),
        (ServerId(0), StoreOp::Ttl { key: k() }),
        (ServerId(0), StoreOp::Read { key: k() }),
        (ServerId(0), StoreOp::Read { key: k() }),
        (ServerId(0), StoreOp::Read { key: k() }),
        (ServerId(0), StoreOp::Renew { rights: vec![(Slot(1), Epoch(1)), (Slot(2), Epoch(1))], lease: 100 }),
        (ServerId(0), StoreOp::Release { rights: vec![(Slot(1), Epoch(1))] }),
        (ServerId(1), StoreOp::Acquire { slots: vec![Slot(1)], lease: 100 }),
        (ServerId(0), w(4, Write::Set(b"x".to_vec()))),
        (
            ServerId(1),
            StoreOp::Write { slot: Slot(1), fence: Some(Epoch(2)), req: req(7), key: k(), write: Write::Del },
        ),
    ];
    ops.into_iter().enumerate().map(|(i, (s, op))| (s, op, Time(1000 + i as u64))).collect()
}

/// Runs the agreement script through `run` (a database) and through the
/// model-checked `MemStore`, and compares every reply.
#[cfg(test)]
pub fn check_agreement(mut run: impl FnMut(ServerId, StoreOp, Time) -> StoreReply) {
    use failgroup_model::{MemStore, Store};
    let mut mem = MemStore::new(None);
    let mut versions = Versions::default();
    for (i, (from, op, now)) in agreement_script().into_iter().enumerate() {
        let got = run(from, op.clone(), now);
        let want = mem.execute(from, op.clone(), now);
        assert_eq!(got, versions.map(&want, &got), "command {i}: {op:?}");
    }
}

/// Versions from a sequence skip numbers (a batch draws as many as it
/// has writes, and not every write writes): replies must agree up to an
/// order-keeping renaming of versions, which this builds as it goes.
#[cfg(test)]
#[derive(Default)]
struct Versions(std::collections::BTreeMap<u64, u64>);

#[cfg(test)]
impl Versions {
    /// `want` with its version renamed to `got`'s, after checking that
    /// the renaming stays one-to-one and keeps the order.
    fn map(&mut self, want: &StoreReply, got: &StoreReply) -> StoreReply {
        let version = |r: &StoreReply| match r {
            StoreReply::Read { version, .. } | StoreReply::Written { version, .. } => Some(*version),
            _ => None,
        };
        let (Some(w), Some(g)) = (version(want), version(got)) else { return want.clone() };
        if w != 0 && g != 0 {
            let before = self.0.range(..w).next_back().map(|(_, g)| *g);
            let after = self.0.range(w + 1..).next().map(|(_, g)| *g);
            assert!(before.is_none_or(|b| b < g) && after.is_none_or(|a| a > g), "version order: {w} -> {g}");
            assert_eq!(*self.0.entry(w).or_insert(g), g, "version {w} renamed twice");
        }
        let mut r = want.clone();
        if let StoreReply::Read { version, .. } | StoreReply::Written { version, .. } = &mut r {
            *version = if w == 0 { 0 } else { g };
        }
        r
    }
}
