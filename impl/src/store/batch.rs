//! A database as a server's store thread uses it ([`BatchStore`]), the
//! cluster's mark it records, and why a store fails ([`StoreError`]).

use super::postgres::protocol::PgError;
use super::tables::Identity;
use failgroup_model::{Mode, StoreOp, StoreReply, StoreTag};

pub type Job = (StoreTag, StoreOp);
pub type Done = (StoreTag, StoreReply);

/// A database as a server's store thread uses it: a batch of commands in
/// one transaction, a reply for each, given only after the commit (all
/// `Failed` if it rolled back).
pub trait BatchStore {
    fn run_batch(&mut self, me: &Identity, batch: &[Job]) -> Vec<StoreReply>;

    /// Deletes what no command needs any more (expired keys, records of
    /// applied writes older than [`APPLIED_KEEP_MS`](super::APPLIED_KEEP_MS),
    /// renewal counts of holders with no right left), in a transaction of
    /// its own, tried once: no command waits on it or is retried for it.
    fn prune(&mut self) -> Result<(), StoreError>;

    /// Records `mark` in a store that has none (or, with `adopt`, replaces
    /// the one it has and drops every right and every topology the master
    /// recorded); otherwise refuses a node
    /// whose mark differs from the store's.
    fn check_mark(&mut self, mark: &ClusterMark, adopt: bool) -> Result<(), StoreError>;

    /// A master incarnation greater than every one drawn before.
    fn next_master_incarnation(&mut self) -> Result<u64, StoreError>;

    /// Records topology `version` (its config text), unless a newer one is
    /// recorded; returns whether it was.
    fn save_topology(&mut self, version: u64, spec: &[u8]) -> Result<bool, StoreError>;

    /// The newest topology recorded, if any: its version and config text.
    fn load_topology(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// Every serving right recorded: slot, holder's name, whether released
    /// (for `failgroup status`).
    fn right_holders(&mut self) -> Result<Vec<(u16, String, bool)>, StoreError>;
}

impl<T: BatchStore + ?Sized> BatchStore for Box<T> {
    fn run_batch(&mut self, me: &Identity, batch: &[Job]) -> Vec<StoreReply> {
        (**self).run_batch(me, batch)
    }

    fn prune(&mut self) -> Result<(), StoreError> {
        (**self).prune()
    }

    fn check_mark(&mut self, mark: &ClusterMark, adopt: bool) -> Result<(), StoreError> {
        (**self).check_mark(mark, adopt)
    }

    fn next_master_incarnation(&mut self) -> Result<u64, StoreError> {
        (**self).next_master_incarnation()
    }

    fn save_topology(&mut self, version: u64, spec: &[u8]) -> Result<bool, StoreError> {
        (**self).save_topology(version, spec)
    }

    fn load_topology(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        (**self).load_topology()
    }

    fn right_holders(&mut self) -> Result<Vec<(u16, String, bool)>, StoreError> {
        (**self).right_holders()
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
