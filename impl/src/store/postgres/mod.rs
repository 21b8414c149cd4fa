//! The PostgreSQL store: the tables of [`crate::store`] as `failgroup_*`
//! tables of the user's database, over the blocking client of [`crate::store::postgres::protocol`].
//!
//! Each batch of a server's store thread is one `SERIALIZABLE` transaction:
//! batches of different servers then behave as if run one after the other,
//! which is what the fencing check (a right read, then a write under it)
//! and `Acquire` (a right read, then replaced) need. A serialization
//! failure, a lock not granted in time or a lost connection retries the
//! batch; any other error rolls it back and fails every command in it.
//! Versions come from a sequence (no row every batch would lock).
//! Keys are indexed by their SHA-256 (a B-tree entry must fit in a third of
//! a page; keys, as in Redis, may be far longer).
//! Time is the database's clock (`clock_timestamp()`), read once per
//! transaction, for keys' time to live only: rights carry no time (see
//! `failgroup_model::store`).

pub mod error;
pub mod protocol;
mod tx;
pub mod url;

use crate::store::postgres::protocol::{Param, PgConn, PgError, PgUrl};
use crate::store::{self, BatchStore, ClusterMark, Identity, Job, StoreError, Tables, APPLIED_KEEP_MS};
use failgroup_model::{StoreReply, Time};
use std::time::{Duration, Instant};
use tx::PgTx;

/// 2: rights name their holder and its incarnation and count renewals (no
/// lease time); the cluster's mark and the master's incarnation. 3: a key's
/// type (`kind`). 4: renewals counted per holder (`failgroup_holders`),
/// rights frozen when left out of a renewal.
pub const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS failgroup_meta (name text PRIMARY KEY, value bigint NOT NULL);
    CREATE TABLE IF NOT EXISTS failgroup_topology (version bigint PRIMARY KEY, spec bytea NOT NULL);
    CREATE TABLE IF NOT EXISTS failgroup_kv (
        key_hash bytea PRIMARY KEY, key bytea NOT NULL, value bytea NOT NULL,
        version bigint NOT NULL, expires_at bigint, kind bigint NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS failgroup_rights (
        slot bigint PRIMARY KEY, holder bytea NOT NULL, incarnation bigint NOT NULL, epoch bigint NOT NULL,
        renewals bigint NOT NULL, released bigint NOT NULL, frozen bigint NOT NULL DEFAULT 1);
    CREATE INDEX IF NOT EXISTS failgroup_rights_by_holder ON failgroup_rights (holder, incarnation);
    CREATE TABLE IF NOT EXISTS failgroup_holders (
        holder bytea NOT NULL, incarnation bigint NOT NULL, renewals bigint NOT NULL,
        PRIMARY KEY (holder, incarnation));
    CREATE TABLE IF NOT EXISTS failgroup_applied (
        client bigint NOT NULL, seq bigint NOT NULL, result bytea NOT NULL, at bigint NOT NULL,
        PRIMARY KEY (client, seq));
    CREATE SEQUENCE IF NOT EXISTS failgroup_version;
    CREATE INDEX IF NOT EXISTS failgroup_kv_by_version ON failgroup_kv (version);
    INSERT INTO failgroup_meta VALUES ('schema_version', 4) ON CONFLICT DO NOTHING;";

/// From schema 1 (rights by a server's position, with a lease time): those
/// rows are leases and mean nothing now; every node takes its rights afresh.
const MIGRATE_1: &str = "
    DROP TABLE failgroup_rights;
    CREATE TABLE failgroup_rights (
        slot bigint PRIMARY KEY, holder bytea NOT NULL, incarnation bigint NOT NULL, epoch bigint NOT NULL,
        renewals bigint NOT NULL, released bigint NOT NULL);
    UPDATE failgroup_meta SET value = 2 WHERE name = 'schema_version';";

/// From schema 2 (strings only): every row is a string.
const MIGRATE_2: &str = "
    ALTER TABLE failgroup_kv ADD COLUMN IF NOT EXISTS kind bigint NOT NULL DEFAULT 0;
    UPDATE failgroup_meta SET value = 3 WHERE name = 'schema_version';";

/// From schema 3 (renewals counted in each right's row): those rows keep
/// their counts, frozen (a taker sees the stamps it saw before).
const MIGRATE_3: &str = "
    ALTER TABLE failgroup_rights ADD COLUMN IF NOT EXISTS frozen bigint NOT NULL DEFAULT 1;
    UPDATE failgroup_meta SET value = 4 WHERE name = 'schema_version';";

/// Connects, creates the tables if they are missing (under an advisory
/// lock: servers start together) and checks the schema's version.
pub fn open(url: &PgUrl) -> Result<PgConn, StoreError> {
    let fail = |error: PgError| StoreError::Postgres {
        at: format!("postgres://{}@{}:{}/{}", url.user, url.host, url.port, url.dbname),
        error,
    };
    let mut c = PgConn::connect(url).map_err(fail)?;
    c.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock(7243107); {SCHEMA} COMMIT;")).map_err(fail)?;
    let version = |c: &mut PgConn| -> Result<i64, StoreError> {
        let rows = c.query("SELECT value FROM failgroup_meta WHERE name = 'schema_version'", &[]).map_err(fail)?;
        Ok(rows.first().map(|r| r.int_req(0)).transpose().map_err(fail)?.unwrap_or(0))
    };
    if version(&mut c)? == 1 {
        c.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock(7243107); {MIGRATE_1} COMMIT;")).map_err(fail)?;
    }
    if version(&mut c)? == 2 {
        c.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock(7243107); {MIGRATE_2} COMMIT;")).map_err(fail)?;
    }
    if version(&mut c)? == 3 {
        c.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock(7243107); {MIGRATE_3} COMMIT;")).map_err(fail)?;
    }
    let v = version(&mut c)?;
    match v {
        SCHEMA_VERSION => Ok(c),
        v if v > SCHEMA_VERSION => Err(fail(PgError::Unusable(format!(
            "schema version {v} is newer than this build's {SCHEMA_VERSION}: upgrade failgroup"
        )))),
        v => Err(fail(PgError::Unusable(format!("schema version {v} is unknown (this build: {SCHEMA_VERSION})")))),
    }
}

/// A server's PostgreSQL store: one connection (the store thread runs one
/// batch at a time), opened again after a failure.
pub struct PgStore {
    url: PgUrl,
    conn: Option<PgConn>,
    /// How long a batch is tried again after conflicts and lost connections.
    retry_for: Duration,
}

impl PgStore {
    pub fn new(url: PgUrl, conn: PgConn, retry_for: Duration) -> PgStore {
        PgStore { url, conn: Some(conn), retry_for }
    }

    fn conn(&mut self) -> Result<&mut PgConn, PgError> {
        if self.conn.as_ref().is_some_and(|c| c.broken) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let c = PgConn::connect(&self.url)?;
            tracing::info!(host = %self.url.host, "store connection opened");
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("set above"))
    }

    /// One transaction: begun with what `batch` reads read ahead, `f`
    /// at the database's time, the commit; rolled back if any fails.
    /// With `alone`, once no other server writes ([`PgTx::open`]).
    fn transaction<T>(
        &mut self,
        batch: &[Job],
        alone: bool,
        f: impl FnOnce(&mut PgTx<'_>, Time) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let c = self.conn()?;
        let result = (|| {
            let (mut t, now) = PgTx::open(c, batch, alone)?;
            let out = f(&mut t, now)?;
            t.commit()?;
            Ok(out)
        })();
        if result.is_err() && !c.broken {
            let _ = c.batch("ROLLBACK");
        }
        result
    }

    fn attempt(&mut self, me: &Identity, batch: &[Job], alone: bool) -> Result<Vec<StoreReply>, PgError> {
        self.transaction(batch, alone, |t, now| store::run_all(t, me, batch.iter().map(|(_, op)| op), now))
    }
}

/// The pause before a batch's try after `conflicts` conflicts: random, up
/// to 4 ms doubled with each conflict, at most 256 ms. Two servers whose
/// batches keep conflicting (two failover servers taking a crashed
/// server's rights, a thousand at a time) retried within the same 2-32 ms
/// each time, and met again: in the PostgreSQL pass of
/// `runtime_failover::kill_9_of_a_server_gives_no_errors_and_no_stale_reads`
/// an ask for rights failed after seconds of conflicts, and the load
/// stalled.
fn conflict_pause(conflicts: u32) -> Duration {
    let most = 4u64 << conflicts.min(6);
    Duration::from_millis(1 + crate::util::random_u64() % most)
}

/// Conflicts after which a batch runs once no other server writes
/// ([`PgTx::open`]): conflicts are rarely more than two in a row,
/// and a batch run alone holds up every other server's writes.
const ALONE_AFTER: u32 = 3;

impl BatchStore for PgStore {
    /// Serialization failures and locks not granted in time (another
    /// server's batch touched the same rows) and a lost connection are
    /// retried for up to `retry_for` (at least twice the timeout), after a
    /// random pause that grows with each conflict ([`conflict_pause`]),
    /// resp. 200 ms; after [`ALONE_AFTER`] conflicts, once no other server
    /// writes, which no conflict rolls back: the batch is one transaction, so it
    /// either committed or left no trace, and running it again is safe (a
    /// write that did commit answers from `applied`). A server cut off from
    /// the database thus keeps its requests until the link heals or the
    /// request timeout passes; once its rights have lapsed meanwhile, the
    /// retried batch is fenced and the requests go to the new holder.
    fn run_batch(&mut self, me: &Identity, batch: &[Job]) -> Vec<StoreReply> {
        let deadline = Instant::now() + self.retry_for.max(2 * self.url.timeout);
        let mut conflicts = 0u32;
        let result = loop {
            match self.attempt(me, batch, conflicts >= ALONE_AFTER) {
                Err(e) if e.retryable() && Instant::now() < deadline => {
                    tracing::debug!(error = %e, commands = batch.len(), conflicts, "store batch retried");
                    std::thread::sleep(conflict_pause(conflicts));
                    conflicts += 1;
                }
                Err(e) if e.connection_lost() && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "store connection lost; trying again");
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => break other,
            }
        };
        result.unwrap_or_else(|e| store::failed_batch(batch, &e))
    }

    /// Once, without waiting for a lock: a prune scans whole tables, and
    /// in a `SERIALIZABLE` transaction it conflicts with the other
    /// servers' writes more often than a batch does.
    fn prune(&mut self) -> Result<(), StoreError> {
        self.transaction(&[], false, |t, now| {
            t.no_lock_wait()?;
            t.prune(now.0, now.0.saturating_sub(APPLIED_KEEP_MS))
        })
        .map_err(|error| StoreError::Postgres { at: "a prune".into(), error })
    }

    fn check_mark(&mut self, mark: &ClusterMark, adopt: bool) -> Result<(), StoreError> {
        let fail = |error| StoreError::Postgres { at: "the cluster's metadata".into(), error };
        let c = self.conn().map_err(fail)?;
        let result = (|| -> Result<Result<(), StoreError>, PgError> {
            c.batch("BEGIN; SELECT pg_advisory_xact_lock(7243107)")?;
            let rows = c.query(
                "SELECT (SELECT value FROM failgroup_meta WHERE name = 'cluster_mode'),
                        (SELECT value FROM failgroup_meta WHERE name = 'cluster_topology')",
                &[],
            )?;
            let found = match rows.first() {
                Some(r) => match (r.int(0)?, r.int(1)?) {
                    (Some(m), Some(t)) => Some(ClusterMark::from_ints(m, t)),
                    _ => None,
                },
                None => None,
            };
            if let Some(found) = found.filter(|_| !adopt) {
                c.batch("COMMIT")?;
                return Ok(mark.matches(&found));
            }
            let (m, t) = mark.to_ints();
            c.query(
                "INSERT INTO failgroup_meta (name, value) VALUES ('cluster_mode', $1), ('cluster_topology', $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[Param::Int(m), Param::Int(t)],
            )?;
            if adopt {
                c.batch("DELETE FROM failgroup_rights; DELETE FROM failgroup_holders; DELETE FROM failgroup_topology")?;
            }
            c.batch("COMMIT")?;
            Ok(Ok(()))
        })();
        match result {
            Ok(r) => r,
            Err(e) => {
                let _ = c.batch("ROLLBACK");
                Err(fail(e))
            }
        }
    }

    fn next_master_incarnation(&mut self) -> Result<u64, StoreError> {
        let fail = |error| StoreError::Postgres { at: "the master's incarnation".into(), error };
        let c = self.conn().map_err(fail)?;
        let rows = c
            .query(
                "INSERT INTO failgroup_meta (name, value) VALUES ('master_incarnation', 1)
                 ON CONFLICT (name) DO UPDATE SET value = failgroup_meta.value + 1 RETURNING value",
                &[],
            )
            .map_err(fail)?;
        let n = rows.first().map(|r| r.int_req(0)).transpose().map_err(fail)?;
        n.map(|n| n as u64).ok_or_else(|| fail(PgError::Protocol("no master incarnation returned".into())))
    }

    fn save_topology(&mut self, version: u64, spec: &[u8]) -> Result<bool, StoreError> {
        let fail = |error| StoreError::Postgres { at: "the cluster's topology".into(), error };
        let c = self.conn().map_err(fail)?;
        // Inserted only above the newest version recorded, in one statement.
        let rows = c
            .query(
                "INSERT INTO failgroup_topology (version, spec)
                 SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM failgroup_topology WHERE version >= $1)
                 ON CONFLICT DO NOTHING RETURNING version",
                &[Param::Int(version as i64), Param::Bytes(spec)],
            )
            .map_err(fail)?;
        Ok(!rows.is_empty())
    }

    fn right_holders(&mut self) -> Result<Vec<(u16, String, bool)>, StoreError> {
        let fail = |error| StoreError::Postgres { at: "the serving rights".into(), error };
        let c = self.conn().map_err(fail)?;
        let rows = c.query("SELECT slot, holder, released FROM failgroup_rights ORDER BY slot", &[]).map_err(fail)?;
        rows.iter()
            .map(|r| {
                let holder = String::from_utf8_lossy(&r.bytes(1)?.unwrap_or_default()).into_owned();
                Ok((r.int_req(0)? as u16, holder, r.int_req(2)? != 0))
            })
            .collect::<Result<Vec<_>, PgError>>()
            .map_err(fail)
    }

    fn load_topology(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let fail = |error| StoreError::Postgres { at: "the cluster's topology".into(), error };
        let c = self.conn().map_err(fail)?;
        let rows =
            c.query("SELECT version, spec FROM failgroup_topology ORDER BY version DESC LIMIT 1", &[]).map_err(fail)?;
        match rows.first() {
            None => Ok(None),
            Some(r) => Ok(Some((r.int_req(0).map_err(fail)? as u64, r.bytes(1).map_err(fail)?.unwrap_or_default()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failgroup_model::{Epoch, Slot, StoreTag};

    /// The PostgreSQL store answers a sequence of commands exactly as the
    /// model-checked `MemStore` does. Needs `FAILGROUP_TEST_PG` (an admin
    /// URL, e.g. from tests/scripts/postgres.sh); `.ci/run` sets it.
    #[test]
    fn records_topology_versions() {
        let Some(url) = crate::store::postgres::protocol::test_database("fg_unit_topology") else { return };
        let conn = open(&url).unwrap();
        let mut store = PgStore::new(url, conn, Duration::from_secs(1));
        crate::store::agreement::check_topology_records(&mut store);
    }

    #[test]
    fn agrees_with_the_in_memory_store() {
        let Some(admin) = crate::store::postgres::protocol::test_database("fg_unit_agreement") else { return };
        let mut conn = open(&admin).unwrap();
        crate::store::agreement::check_agreement(|me, op, now| {
            // Through the read-ahead of a one-command batch, at the script's time.
            let (mut t, _) = PgTx::begin(&mut conn, &[(StoreTag::Op(0), op.clone())]).unwrap();
            let got = store::run(&mut t, me, op, now).unwrap();
            t.commit().unwrap();
            got
        });
    }

    /// The same script as one batch: the rows read ahead and the writes
    /// held until the commit must answer as command-by-command execution.
    #[test]
    fn one_batch_agrees_with_the_in_memory_store() {
        let Some(url) = crate::store::postgres::protocol::test_database("fg_unit_batch") else { return };
        let mut conn = open(&url).unwrap();
        let jobs: Vec<Job> =
            crate::store::agreement::agreement_script().into_iter().map(|(_, op, _)| (StoreTag::Op(0), op)).collect();
        let (mut t, _) = PgTx::begin(&mut conn, &jobs).unwrap();
        crate::store::agreement::check_agreement(|me, op, now| store::run(&mut t, me, op, now).unwrap());
        t.commit().unwrap();
        // What was committed is what the store now holds.
        let (mut t, _) = PgTx::begin(&mut conn, &[]).unwrap();
        assert_eq!(t.kv_get(b"k").unwrap().map(|r| r.0), None, "the script ends with the key deleted");
        assert_eq!(t.rights(&[Slot(1)]).unwrap()[&1].epoch, Epoch(3));
        t.commit().unwrap();
    }

    /// A database of schema 2 (strings only, no type column) opens as
    /// schema 3 with its rows kept as strings.
    #[test]
    fn a_schema_2_database_is_migrated_with_its_keys() {
        let Some(url) = crate::store::postgres::protocol::test_database("fg_unit_migrate2") else { return };
        let mut c = open(&url).unwrap();
        c.batch(
            "ALTER TABLE failgroup_kv DROP COLUMN kind;
             UPDATE failgroup_meta SET value = 2 WHERE name = 'schema_version';
             INSERT INTO failgroup_kv VALUES (sha256('\\x6b'::bytea), '\\x6b', '\\x7631', 4, NULL);",
        )
        .unwrap();
        let mut c = open(&url).unwrap();
        let (mut t, _) = PgTx::begin(&mut c, &[]).unwrap();
        assert_eq!(t.kv_get(b"k").unwrap(), Some((b"v1".to_vec(), 4, None, crate::store::tables::KIND_STRING)));
        t.commit().unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_error() {
        let Some(url) = crate::store::postgres::protocol::test_database("fg_unit_schema") else { return };
        let mut c = open(&url).unwrap();
        c.batch("UPDATE failgroup_meta SET value = 99 WHERE name = 'schema_version'").unwrap();
        let e = open(&url).err().expect("a newer schema must be refused").to_string();
        assert!(e.contains("schema version 99 is newer"), "{e}");
    }

    /// A batch never waits for the prune. Here another session holds the
    /// row of an expired key, which the prune deletes, locked for 10 s.
    /// The first batch of a store thread, after which the first prune is
    /// due, is answered at once; the prune, tried again once the lock is
    /// gone, deletes only what no command needs. When the first batch
    /// carried the prune, it waited for that lock and was retried until
    /// the lock went: the batch's reply took the 10 s.
    #[test]
    fn a_batch_never_waits_for_the_prune() {
        let Some(url) = crate::store::postgres::protocol::test_database("fg_unit_prune") else { return };
        // Opened (its schema checked) before the lock is taken.
        let store = PgStore::new(url.clone(), open(&url).unwrap(), Duration::from_secs(20));
        // A session that may stay idle in its transaction past the lock.
        let mut other = open(&PgUrl { timeout: Duration::from_secs(60), ..url.clone() }).unwrap();
        let now = crate::util::unix_ms() as i64;
        other
            .batch(&format!(
                "INSERT INTO failgroup_kv VALUES (sha256('\\x78'::bytea), '\\x78', '\\x31', 1, 1, 0),
                     (sha256('\\x79'::bytea), '\\x79', '\\x31', 2, {}, 0);
                 INSERT INTO failgroup_applied VALUES (1, 1, '\\x00', 1), (1, 2, '\\x00', {now});
                 INSERT INTO failgroup_rights VALUES (5, '\\x6b', 1, 1, 0, 0, 0);
                 INSERT INTO failgroup_holders VALUES ('\\x67', 1, 3), ('\\x6b', 1, 4);",
                now + 600_000
            ))
            .unwrap();
        // A statement of its own: in one query string with the inserts,
        // BEGIN would take them into its transaction.
        other.batch("BEGIN; SELECT 1 FROM failgroup_kv WHERE key = '\\x78' FOR UPDATE").unwrap();
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let locker = {
            let released = released.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(10));
                released.store(true, std::sync::atomic::Ordering::SeqCst);
                other.batch("COMMIT").unwrap();
                other
            })
        };
        let (jobs, done, thread) = crate::store::thread::spawn_for_test(store);
        jobs.send((StoreTag::Op(0), failgroup_model::StoreOp::Read { key: b"k".to_vec() })).unwrap();
        let first = done.recv_timeout(Duration::from_secs(20)).expect("the first batch is answered");
        assert!(!released.load(std::sync::atomic::Ordering::SeqCst), "the first batch waited for the prune's lock");
        assert!(matches!(first.1, StoreReply::Read { value: None, .. }), "{first:?}");
        let mut other = locker.join().unwrap();
        for i in 1..=crate::store::thread::PRUNE_AGAIN {
            jobs.send((StoreTag::Op(i), failgroup_model::StoreOp::Read { key: b"k".to_vec() })).unwrap();
            done.recv_timeout(Duration::from_secs(20)).expect("a batch is answered");
        }
        drop(jobs);
        thread.join().unwrap();
        let mut rows = |sql: &str| -> Vec<i64> {
            other.query(sql, &[]).unwrap().iter().map(|r| r.int(0).unwrap().unwrap()).collect()
        };
        assert_eq!(rows("SELECT version FROM failgroup_kv ORDER BY version"), [2], "keys left");
        assert_eq!(rows("SELECT seq FROM failgroup_applied"), [2], "applied records left");
        assert_eq!(rows("SELECT renewals FROM failgroup_holders"), [4], "holders left");
    }

    /// Two servers' batches, each writing a key of a slot it holds (its
    /// fence checked against its right) and renewing its rights, overlap
    /// without conflict: each reads only its own holder's renewal count
    /// (and the keys and records of writes, here on index pages of their
    /// own among other rows). When the rights' read joined the holders'
    /// table by a sequential scan (a tiny table), every batch held a
    /// predicate lock on the whole table, so any two overlapping renewals
    /// formed a cycle and one rolled back; under load a server's batch was
    /// retried for the whole request timeout (20 s) and its clients got
    /// `could not serialize access`.
    #[test]
    fn two_servers_batches_do_not_conflict() {
        use failgroup_model::{ClientId, Holder, ReqId, ServerId, StoreOp, StoreReply, Write};
        let Some(url) = crate::store::postgres::protocol::test_database("fg_unit_two_holders") else { return };
        let (mut a, mut b) = (open(&url).unwrap(), open(&url).unwrap());
        let me = |server| crate::store::agreement::test_identity(Holder { server: ServerId(server), incarnation: 1 });
        let (ida, idb) = (me(0), me(1));
        let one = |c: &mut PgConn, me: &Identity, op: StoreOp| {
            let (mut t, now) = PgTx::begin(c, &[(StoreTag::Op(0), op.clone())]).unwrap();
            let reply = store::run(&mut t, me, op, now).unwrap();
            t.commit().unwrap();
            reply
        };
        let acquire = |slot| StoreOp::Acquire { slots: vec![(Slot(slot), None)], lease: 60_000 };
        let StoreReply::Acquired { granted: ga, .. } = one(&mut a, &ida, acquire(1)) else { panic!("acquire") };
        let StoreReply::Acquired { granted: gb, .. } = one(&mut b, &idb, acquire(2)) else { panic!("acquire") };
        // Rows among which each server's key and record have index pages of
        // their own.
        a.batch(
            "INSERT INTO failgroup_kv SELECT sha256(int8send(g)), int8send(g), '\\x00', g, NULL, 0
                 FROM generate_series(1, 20000) AS g;
             INSERT INTO failgroup_applied SELECT g, 1, '\\x00', 0 FROM generate_series(2, 20000) AS g",
        )
        .unwrap();
        let write = |slot: u16, epoch, seq| StoreOp::Write {
            slot: Slot(slot),
            fence: Some(epoch),
            req: ReqId { client: ClientId(if slot == 1 { 1 } else { 1 << 40 }), seq },
            key: format!("key of slot {slot}").into_bytes(),
            write: Write::Set(b"v".to_vec()),
        };
        // Each holder has a renewal count.
        one(&mut a, &ida, StoreOp::Renew { rights: ga.clone(), lease: 60_000 });
        one(&mut b, &idb, StoreOp::Renew { rights: gb.clone(), lease: 60_000 });
        // As autovacuum would: the planner knows the holders' table is tiny.
        a.batch("ANALYZE").unwrap();
        for seq in 1..=3 {
            // A's batch reads its right and renews; B's whole batch runs
            // and commits meanwhile; then A commits.
            let batch_a = [write(1, ga[0].1, seq), StoreOp::Renew { rights: ga.clone(), lease: 60_000 }];
            let jobs: Vec<Job> = batch_a.iter().map(|op| (StoreTag::Op(0), op.clone())).collect();
            let (mut ta, now) = PgTx::begin(&mut a, &jobs).unwrap();
            for op in batch_a {
                let reply = store::run(&mut ta, &ida, op, now).unwrap();
                let renewed = matches!(&reply, StoreReply::Renewed { lost, .. } if lost.is_empty());
                assert!(renewed || matches!(reply, StoreReply::Written { .. }), "{reply:?}");
            }
            let batch_b = vec![write(2, gb[0].1, seq), StoreOp::Renew { rights: gb.clone(), lease: 60_000 }];
            let jobs: Vec<Job> = batch_b.into_iter().map(|op| (StoreTag::Op(0), op)).collect();
            let (mut tb, now_b) = PgTx::begin(&mut b, &jobs).unwrap();
            let replies = store::run_all(&mut tb, &idb, jobs.iter().map(|(_, op)| op), now_b);
            let replies = replies.unwrap();
            assert!(
                matches!(&replies[..], [StoreReply::Written { .. }, StoreReply::Renewed { lost, .. }] if lost.is_empty())
            );
            tb.commit().expect("B's batch commits");
            if let Err(e) = ta.commit() {
                panic!("batch {seq}: A's batch, overlapping B's, rolled back: {e}");
            }
        }
    }

    /// A batch that keeps conflicting gets through. Another server commits
    /// transactions back to back, each reading the key this server writes
    /// and writing one beside it (one index page: each transaction's read
    /// conflicts with the other's write). Retried as it was, the batch met
    /// a new conflict on every try and failed once its 2 s were over
    /// ("could not serialize access"); after a few conflicts it now runs
    /// once the other server's writes are held up, and commits.
    #[test]
    fn a_batch_that_keeps_conflicting_gets_through() {
        use failgroup_model::{ClientId, Holder, ReqId, ServerId, StoreOp, StoreReply, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let Some(url) = crate::store::postgres::protocol::test_database("fg_unit_starved") else { return };
        let url = PgUrl { timeout: Duration::from_secs(1), ..url };
        let mut store = PgStore::new(url.clone(), open(&url).unwrap(), Duration::from_secs(2));
        let me = crate::store::agreement::test_identity(Holder { server: ServerId(0), incarnation: 1 });
        let acquire = StoreOp::Acquire { slots: vec![(Slot(1), None)], lease: 600_000 };
        let StoreReply::Acquired { granted, .. } = store.run_batch(&me, &[(StoreTag::Op(0), acquire)])[0].clone()
        else {
            panic!("acquire")
        };
        let mut other = open(&url).unwrap();
        other.batch("INSERT INTO failgroup_kv VALUES (sha256('\\x62'::bytea), '\\x62', '\\x30', 1, NULL, 0)").unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let competitor = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut commits = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let r = other.batch(
                        "BEGIN ISOLATION LEVEL SERIALIZABLE;
                         SELECT value FROM failgroup_kv WHERE key_hash = sha256('\\x61'::bytea);
                         UPDATE failgroup_kv SET value = '\\x31', version = version + 1 WHERE key_hash = sha256('\\x62'::bytea);
                         COMMIT",
                    );
                    match r {
                        Ok(()) => commits += 1,
                        Err(_) => {
                            let _ = other.batch("ROLLBACK");
                        }
                    }
                }
                commits
            })
        };
        // Writes with renewals between them: each write reads its right
        // again, so the transaction spans several round trips.
        let mut batch = Vec::new();
        for seq in 1..=4 {
            let req = ReqId { client: ClientId(7), seq };
            let write = Write::Set(b"v".to_vec());
            batch.push(StoreOp::Write { slot: Slot(1), fence: Some(granted[0].1), req, key: b"a".to_vec(), write });
            batch.push(StoreOp::Renew { rights: granted.clone(), lease: 600_000 });
        }
        let jobs: Vec<Job> = batch.into_iter().map(|op| (StoreTag::Op(0), op)).collect();
        let mut failed = Vec::new();
        for round in 0..10 {
            for reply in store.run_batch(&me, &jobs) {
                if let StoreReply::Failed(e) = reply {
                    failed.push(format!("round {round}: {e}"));
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
        let commits = competitor.join().unwrap();
        assert!(commits > 10, "the other server committed {commits} transactions meanwhile");
        assert!(failed.is_empty(), "{} commands failed: {:?}", failed.len(), failed.first());
    }

    #[test]
    fn an_unreachable_database_fails_within_the_timeout() {
        let url = PgUrl::parse("postgres://u@127.0.0.1:1/db?timeout_ms=500").unwrap();
        let t = Instant::now();
        let e = open(&url).err().expect("nothing listens on port 1").to_string();
        assert!(e.contains("127.0.0.1:1"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
