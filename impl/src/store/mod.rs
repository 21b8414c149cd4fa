//! Databases as the core's store: a backend provides row operations
//! ([`Tables`]); [`run`] carries a [`StoreOp`] out with the model crate's
//! `store::execute`, the one implementation of the store's semantics, which
//! the model checker runs over `MemStore`.
//!
//! Tables: `kv` (key, value, version, expiry), `rights` (each slot's serving
//! right: the holder's server name and incarnation, fencing epoch, renewal
//! count, released), `applied` (replies of applied writes, so a retried
//! write is applied at most once). Rights carry no time: a taker waits on
//! its own clock (see `failgroup_model::store`). Times are the store's
//! clock in Unix milliseconds, taken once per transaction, for keys' time
//! to live and for pruning only.

pub mod postgres;
pub mod sqlite;

use failgroup_model::store;
use failgroup_model::{
    Epoch, Holder, KvRow, Mode, OpResult, ReqId, RightRecord, Rows, Rules, ServerId, Slot, StoreOp, StoreReply,
    StoreTag, Time,
};
use postgres::protocol::PgError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

/// How long a write's reply is kept for deduplication. Retries of one
/// request end well within it (they are bounded by request timeouts).
pub const APPLIED_KEEP_MS: u64 = 10 * 60 * 1000;

/// A `kv` row: value, version, expiry.
pub type Row = (Vec<u8>, u64, Option<u64>);

/// A `rights` row. The holder is a server's name (never its position in the
/// config) and the incarnation of its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RightRow {
    pub holder: String,
    pub incarnation: u64,
    pub epoch: Epoch,
    pub renewals: u64,
    pub released: bool,
}

/// Who runs a store's commands: this server process, the cluster's server
/// names (to turn a holder's name into a server) and its mode.
#[derive(Clone, Debug)]
pub struct Identity {
    pub holder: Holder,
    pub names: Arc<[String]>,
    pub mode: Mode,
}

impl Identity {
    pub fn new(holder: Holder, names: Vec<String>, mode: Mode) -> Identity {
        Identity { holder, names: names.into(), mode }
    }

    pub fn name(&self) -> &str {
        &self.names[self.holder.server.0 as usize]
    }

    fn server_of(&self, name: &str) -> Option<ServerId> {
        self.names.iter().position(|n| n == name).map(|i| ServerId(i as u16))
    }

    /// A row's holder as the core knows holders; a name this cluster does
    /// not know is nobody's server (never equal to this process).
    fn holder_of(&self, row: &RightRow) -> Holder {
        let server = self.server_of(&row.holder).unwrap_or(ServerId(u16::MAX));
        Holder { server, incarnation: row.incarnation }
    }
}

/// Row operations of one transaction, as a database keeps them: holders
/// by name, results as bytes, times as Unix milliseconds. [`Named`] turns
/// them into the model's [`Rows`], over which `store::execute` decides.
pub trait Tables {
    type Error;
    /// The row of `key`, expired or not.
    fn kv_get(&mut self, key: &[u8]) -> Result<Option<Row>, Self::Error>;
    /// Writes `key` under a new version (greater than every earlier one), returned.
    fn kv_put(&mut self, key: &[u8], value: &[u8], expiry: Option<u64>) -> Result<u64, Self::Error>;
    /// Deletes `key`; returns a new version, as a write does.
    fn kv_del(&mut self, key: &[u8]) -> Result<u64, Self::Error>;
    /// The rights rows of `slots`; a slot never acquired has none.
    fn rights(&mut self, slots: &[Slot]) -> Result<HashMap<u16, RightRow>, Self::Error>;
    /// Gives the holder (name, incarnation) each slot under its epoch, with
    /// no renewal yet and not released.
    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: &str, incarnation: u64) -> Result<(), Self::Error>;
    /// Slot -> epoch of the rights the holder holds (not released).
    fn rights_of(&mut self, holder: &str, incarnation: u64) -> Result<HashMap<u16, u64>, Self::Error>;
    /// Counts a renewal of every right the holder holds.
    fn renew_all(&mut self, holder: &str, incarnation: u64) -> Result<(), Self::Error>;
    /// Counts a renewal of each slot's right.
    fn renew(&mut self, slots: &[Slot]) -> Result<(), Self::Error>;
    /// Marks each slot's right released.
    fn release(&mut self, slots: &[Slot]) -> Result<(), Self::Error>;
    fn applied(&mut self, req: ReqId) -> Result<Option<Vec<u8>>, Self::Error>;
    fn record(&mut self, req: ReqId, result: &[u8], now: u64) -> Result<(), Self::Error>;
    /// Deletes keys expired at `now` and replies older than `before`.
    fn prune(&mut self, now: u64, before: u64) -> Result<(), Self::Error>;
}

/// A database's tables as the model's [`Rows`]: translation only (names to
/// servers, results to bytes), no decision.
pub struct Named<'a, T> {
    pub tables: &'a mut T,
    pub me: &'a Identity,
}

impl<T: Tables> Named<'_, T> {
    fn name_of(&self, holder: Holder) -> &str {
        self.me.names.get(holder.server.0 as usize).map_or("", |n| n.as_str())
    }
}

impl<T: Tables> Rows for Named<'_, T> {
    type Error = T::Error;

    fn kv_get(&mut self, key: &[u8]) -> Result<Option<KvRow>, T::Error> {
        Ok(self.tables.kv_get(key)?.map(|(v, ver, exp)| (v, ver, exp.map(Time))))
    }

    fn kv_put(&mut self, key: &[u8], value: &[u8], expiry: Option<Time>) -> Result<u64, T::Error> {
        self.tables.kv_put(key, value, expiry.map(|t| t.0))
    }

    fn kv_del(&mut self, key: &[u8]) -> Result<u64, T::Error> {
        self.tables.kv_del(key)
    }

    fn rights(&mut self, slots: &[Slot]) -> Result<Vec<Option<RightRecord>>, T::Error> {
        let mut rows = self.tables.rights(slots)?;
        Ok(slots
            .iter()
            .map(|s| {
                rows.remove(&s.0).map(|r| RightRecord {
                    holder: self.me.holder_of(&r),
                    epoch: r.epoch,
                    renewals: r.renewals,
                    released: r.released,
                    renewed_at: Time::ZERO,
                })
            })
            .collect())
    }

    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: Holder, _now: Time) -> Result<(), T::Error> {
        let name = self.name_of(holder).to_string();
        self.tables.set_rights(rights, &name, holder.incarnation)
    }

    fn rights_of(&mut self, holder: Holder) -> Result<Vec<(Slot, Epoch)>, T::Error> {
        let name = self.name_of(holder).to_string();
        let mine = self.tables.rights_of(&name, holder.incarnation)?;
        Ok(mine.into_iter().map(|(s, e)| (Slot(s), Epoch(e))).collect())
    }

    fn renew(&mut self, slots: &[Slot], _now: Time) -> Result<(), T::Error> {
        self.tables.renew(slots)
    }

    fn renew_all(&mut self, holder: Holder, _now: Time) -> Result<(), T::Error> {
        let name = self.name_of(holder).to_string();
        self.tables.renew_all(&name, holder.incarnation)
    }

    fn release(&mut self, slots: &[Slot]) -> Result<(), T::Error> {
        self.tables.release(slots)
    }

    fn applied(&mut self, req: ReqId) -> Result<Option<OpResult>, T::Error> {
        // A record this version cannot decode counts as none: the write is
        // then fenced or applied as a new one.
        Ok(self.tables.applied(req)?.and_then(|b| postcard::from_bytes::<OpResult>(&b).ok()))
    }

    fn record(&mut self, req: ReqId, result: &OpResult, now: Time) -> Result<(), T::Error> {
        let blob = postcard::to_allocvec(result).expect("encoding to a Vec cannot fail");
        self.tables.record(req, &blob, now.0)
    }
}

/// Carries out one store command of server process `me` at the store's
/// time `now`: the model's `store::execute` over the database's tables.
pub fn run<T: Tables>(t: &mut T, me: &Identity, op: StoreOp, now: Time) -> Result<StoreReply, T::Error> {
    let rules = Rules { mode: me.mode, mutant: None };
    store::execute(&mut Named { tables: t, me }, rules, me.holder, op, now)
}

/// Runs a batch's commands in order; the first error stops it (the caller
/// rolls the transaction back and fails the whole batch).
///
/// A renewal of the same rights as the batch's previous renewal gets that
/// one's answer without touching the rows again: no other server sees the
/// batch half done, so renewing once is renewing twice (the record's stamp
/// changes either way). A server whose store was slow (a lost connection
/// retried for seconds) queues a renewal every third of a lease; renewing
/// each of thousands of rows that many times in one transaction made it too
/// long to ever commit beside the other servers' renewals.
pub fn run_all<'a, T: Tables>(
    t: &mut T,
    me: &Identity,
    ops: impl Iterator<Item = &'a StoreOp>,
    now: Time,
) -> Result<Vec<StoreReply>, T::Error> {
    let mut last_renewal: Option<(&'a [(Slot, Epoch)], StoreReply)> = None;
    let mut replies = Vec::new();
    for op in ops {
        if let StoreOp::Renew { rights, .. } = op {
            if let Some((_, reply)) = last_renewal.as_ref().filter(|(r, _)| *r == &rights[..]) {
                replies.push(reply.clone());
                continue;
            }
        }
        let reply = run(t, me, op.clone(), now)?;
        if let StoreOp::Renew { rights, .. } = op {
            last_renewal = Some((&rights[..], reply.clone()));
        }
        replies.push(reply);
    }
    Ok(replies)
}

pub type Job = (StoreTag, StoreOp);
pub type Done = (StoreTag, StoreReply);

/// A database as a server's store thread uses it: a batch of commands in
/// one transaction, a reply for each, given only after the commit (all
/// `Failed` if it rolled back).
pub trait BatchStore {
    fn run_batch(&mut self, me: &Identity, batch: &[Job]) -> Vec<StoreReply>;

    /// Records `mark` in a store that has none (or, with `adopt`, replaces
    /// the one it has and drops every right); otherwise refuses a node
    /// whose mark differs from the store's.
    fn check_mark(&mut self, mark: &ClusterMark, adopt: bool) -> Result<(), StoreError>;

    /// A master incarnation greater than every one drawn before.
    fn next_master_incarnation(&mut self) -> Result<u64, StoreError>;
}

impl<T: BatchStore + ?Sized> BatchStore for Box<T> {
    fn run_batch(&mut self, me: &Identity, batch: &[Job]) -> Vec<StoreReply> {
        (**self).run_batch(me, batch)
    }

    fn check_mark(&mut self, mark: &ClusterMark, adopt: bool) -> Result<(), StoreError> {
        (**self).check_mark(mark, adopt)
    }

    fn next_master_incarnation(&mut self) -> Result<u64, StoreError> {
        (**self).next_master_incarnation()
    }
}

/// What every node of one cluster must agree on, recorded in its store:
/// the mode and a fingerprint of the topology (server names, groups, slot
/// owners; not addresses, which may move).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterMark {
    pub mode: Mode,
    pub topology: u64,
}

impl ClusterMark {
    pub fn to_ints(self) -> (i64, i64) {
        (if self.mode == Mode::Linearizable { 0 } else { 1 }, self.topology as i64)
    }

    pub fn from_ints(mode: i64, topology: i64) -> ClusterMark {
        ClusterMark { mode: if mode == 0 { Mode::Linearizable } else { Mode::Available }, topology: topology as u64 }
    }

    /// `Ok` if `stored` is this mark; else what differs.
    pub fn matches(&self, stored: &ClusterMark) -> Result<(), StoreError> {
        if *stored == *self {
            return Ok(());
        }
        Err(StoreError::OtherCluster { stored: *stored, configured: *self })
    }
}

/// Why a store could not be opened, set up or asked.
#[derive(Debug)]
pub enum StoreError {
    /// SQLite failed; `at`: the database file or the step.
    Sqlite { at: String, error: rusqlite::Error },
    /// PostgreSQL failed; `at`: the URL (without a password) or the step.
    Postgres { at: String, error: PgError },
    /// The database's schema is one this build cannot read.
    Schema { at: String, found: i64, reads: i64 },
    /// The store belongs to another cluster (mode or topology): this node
    /// is refused (hole 3).
    OtherCluster { stored: ClusterMark, configured: ClusterMark },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fix = "every node of a cluster must use the same config; to change the cluster's mode or \
                   servers, stop every node, then run `failgroup adopt --config FILE` once";
        match self {
            StoreError::Sqlite { at, error } => write!(f, "store {at}: {error}"),
            StoreError::Postgres { at, error } => write!(f, "store {at}: {error}"),
            StoreError::Schema { at, found, reads } => {
                write!(f, "store {at}: schema version {found}, this build reads {reads}")
            }
            StoreError::OtherCluster { stored, configured } if stored.mode != configured.mode => write!(
                f,
                "the store belongs to a cluster in {} mode, this config says {}: {fix}",
                stored.mode, configured.mode
            ),
            StoreError::OtherCluster { stored, configured } => write!(
                f,
                "the store belongs to a cluster of another topology (fingerprint {:016x}, this config's {:016x}): {fix}",
                stored.topology, configured.topology
            ),
        }
    }
}

impl std::error::Error for StoreError {}

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
        let replies = db.run_batch(&me, &batch);
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
/// does: fencing, at-most-once retries, versions, rights taken only after a
/// watched stamp, a second process of one name (`from`, command, time).
#[cfg(test)]
pub fn agreement_script() -> Vec<(Holder, StoreOp, Time)> {
    use failgroup_model::{ClientId, SetCond, SetOpts, Stamp, Write};
    let req = |seq| ReqId { client: ClientId(u64::MAX - 1), seq };
    let k = || b"k".to_vec();
    let w =
        |seq, epoch, write| StoreOp::Write { slot: Slot(1), fence: Some(Epoch(epoch)), req: req(seq), key: k(), write };
    let acquire = |stamp: Option<(u64, u64)>| StoreOp::Acquire {
        slots: vec![(Slot(1), stamp.map(|(e, r)| Stamp { epoch: Epoch(e), renewals: r }))],
        lease: 100,
    };
    // Server 0 twice (two processes of one name), and server 1.
    let (a, twin, b) = (
        Holder { server: ServerId(0), incarnation: 7 },
        Holder { server: ServerId(0), incarnation: 8 },
        Holder { server: ServerId(1), incarnation: 9 },
    );
    let ops = vec![
        (a, acquire(None)),
        (b, acquire(None)),
        (a, w(1, 1, Write::Set(b"5".to_vec()))),
        (a, w(2, 1, Write::Incr(2))),
        (a, w(2, 1, Write::Incr(2))),
        (b, w(3, 1, Write::Del)),
        (a, w(5, 1, Write::SetWith(b"x".to_vec(), SetOpts { ttl_ms: None, cond: SetCond::IfAbsent }))),
        (a, w(6, 1, Write::SetWith(b"t".to_vec(), SetOpts { ttl_ms: Some(3), cond: SetCond::Always }))),
        (a, StoreOp::Ttl { key: k() }),
        (a, StoreOp::Read { key: k() }),
        (a, StoreOp::Read { key: k() }),
        (a, StoreOp::Read { key: k() }),
        (a, StoreOp::Renew { rights: vec![(Slot(1), Epoch(1)), (Slot(2), Epoch(1))], lease: 100 }),
        (twin, acquire(None)),
        (twin, acquire(Some((1, 0)))),
        (twin, acquire(Some((1, 1)))),
        (a, w(4, 1, Write::Set(b"x".to_vec()))),
        (a, StoreOp::Renew { rights: vec![(Slot(1), Epoch(1))], lease: 100 }),
        (twin, StoreOp::Release { rights: vec![(Slot(1), Epoch(2))] }),
        (b, acquire(None)),
        (b, w(7, 3, Write::Del)),
        (a, StoreOp::Write { slot: Slot(1), fence: None, req: req(8), key: k(), write: Write::Del }),
        // A release by a process that does not hold the right changes nothing.
        (a, StoreOp::Release { rights: vec![(Slot(1), Epoch(3))] }),
        (a, acquire(None)),
        // Expiry at its boundary (one command per millisecond from here):
        // set with 2 ms to live, an INCR keeps the expiry, then the key is
        // gone exactly when its time is up.
        (b, w(9, 3, Write::SetWith(b"1".to_vec(), SetOpts { ttl_ms: Some(2), cond: SetCond::Always }))),
        (b, w(10, 3, Write::Incr(1))),
        (b, StoreOp::Ttl { key: k() }),
        (b, StoreOp::Read { key: k() }),
        (b, w(11, 3, Write::Expire(5))),
        (b, w(12, 3, Write::Set(b"v".to_vec()))),
        (b, w(13, 3, Write::Expire(2))),
        (b, StoreOp::Ttl { key: k() }),
        (b, StoreOp::Read { key: k() }),
        (b, w(14, 3, Write::SetWith(b"w".to_vec(), SetOpts { ttl_ms: None, cond: SetCond::IfPresent }))),
        (b, w(15, 3, Write::Set(b"v".to_vec()))),
        (b, w(16, 3, Write::Expire(0))),
        (b, StoreOp::Read { key: k() }),
    ];
    ops.into_iter().enumerate().map(|(i, (s, op))| (s, op, Time(1000 + i as u64))).collect()
}

/// The identity of `holder` in the agreement script's cluster.
#[cfg(test)]
pub fn test_identity(holder: Holder) -> Identity {
    Identity::new(holder, vec!["s0".into(), "s1".into()], Mode::Linearizable)
}

/// Runs the agreement script through `run` (a database) and through the
/// model-checked `MemStore`, and compares every reply.
#[cfg(test)]
pub fn check_agreement(mut run: impl FnMut(&Identity, StoreOp, Time) -> StoreReply) {
    use failgroup_model::{MemStore, Store};
    let mut mem = MemStore::new(Mode::Linearizable, None);
    let mut versions = Versions::default();
    for (i, (from, op, now)) in agreement_script().into_iter().enumerate() {
        let got = run(&test_identity(from), op.clone(), now);
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
