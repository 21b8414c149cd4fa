//! The embedded database: SQLite (bundled, WAL) under the store semantics of
//! [`crate::store`], and the store thread that gives one server group commit.
//!
//! Tables as in [`crate::store`], and `meta` (schema version, last
//! version, the cluster's mode and topology fingerprint, the master's last
//! incarnation). Time is the store's clock: Unix milliseconds of the host,
//! for keys' time to live only.
//!
//! A batch of the store thread is one transaction: one commit (one fsync)
//! for many writes. If anything in it fails, it rolls back and every
//! command in it fails.

use crate::store::{
    self, BatchStore, ClusterMark, Identity, Job, RightRow, Row, StoreError, TableScanRow, Tables, APPLIED_KEEP_MS,
};
use failgroup_model::{Epoch, ReqId, Slot, StoreReply, Time};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::Path;

/// 2: rights name their holder and its incarnation and count renewals
/// (no lease time); the cluster's mark and the master's incarnation.
/// 3: a type per key (hashes). 4: renewals counted per holder (`holders`),
/// rights frozen when left out of a renewal.
pub const SCHEMA_VERSION: i64 = 4;

/// Opens (and creates or checks the schema of) the database at `path`.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let at = || path.display().to_string();
    let conn = Connection::open(path).map_err(|error| StoreError::Sqlite { at: at(), error })?;
    let setup = || -> rusqlite::Result<i64> {
        conn.busy_handler(Some(wait_for_lock))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Checkpoint every 10,000 WAL pages (40 MiB), not 1,000: a commit that
        // crosses the mark copies the WAL into the database file, and the
        // longer interval copies each hot page once for many commits
        // (durable SETs +27 % in docs/BENCHMARKS.md).
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        // FULL: a commit is on disk before it is acknowledged.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS topology (version INTEGER PRIMARY KEY, spec BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS kv (
                 key BLOB PRIMARY KEY, value BLOB NOT NULL,
                 version INTEGER NOT NULL, expires_at INTEGER, kind INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS applied (
                 client INTEGER NOT NULL, seq INTEGER NOT NULL, result BLOB NOT NULL, at INTEGER NOT NULL,
                 PRIMARY KEY (client, seq)) WITHOUT ROWID;
             INSERT OR IGNORE INTO meta VALUES ('schema_version', 4), ('last_version', 0);
             COMMIT;",
        )?;
        // Version 1 kept rights by a server's position and a lease time:
        // those rows mean nothing now (they are leases; every node of this
        // build takes its rights afresh).
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS rights (
                 slot INTEGER PRIMARY KEY, holder TEXT NOT NULL, incarnation INTEGER NOT NULL,
                 epoch INTEGER NOT NULL, renewals INTEGER NOT NULL, released INTEGER NOT NULL,
                 frozen INTEGER NOT NULL DEFAULT 1);
             CREATE INDEX IF NOT EXISTS rights_by_holder ON rights (holder, incarnation);
             CREATE TABLE IF NOT EXISTS holders (
                 holder TEXT NOT NULL, incarnation INTEGER NOT NULL, renewals INTEGER NOT NULL,
                 PRIMARY KEY (holder, incarnation)) WITHOUT ROWID;
             COMMIT;",
        )?;
        let v1: i64 = conn.query_row("SELECT value FROM meta WHERE name = 'schema_version'", [], |r| r.get(0))?;
        if v1 == 1 {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 DROP TABLE rights;
                 CREATE TABLE rights (
                     slot INTEGER PRIMARY KEY, holder TEXT NOT NULL, incarnation INTEGER NOT NULL,
                     epoch INTEGER NOT NULL, renewals INTEGER NOT NULL, released INTEGER NOT NULL);
                 UPDATE meta SET value = 2 WHERE name = 'schema_version';
                 COMMIT;",
            )?;
        }
        // Version 2 knew strings only: every row is one.
        let v2: i64 = conn.query_row("SELECT value FROM meta WHERE name = 'schema_version'", [], |r| r.get(0))?;
        if v2 == 2 {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 ALTER TABLE kv ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
                 UPDATE meta SET value = 3 WHERE name = 'schema_version';
                 COMMIT;",
            )?;
        }
        // Version 3 counted renewals in each right's row: those rows keep
        // their counts, frozen (a taker sees the stamps it saw before).
        // (A database of version 2 or older got its `rights` table, with the
        // column, from this build.) Read under the write lock: servers
        // sharing the file may open it at once.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let v3: i64 = conn.query_row("SELECT value FROM meta WHERE name = 'schema_version'", [], |r| r.get(0))?;
        let has_frozen: bool =
            conn.query_row("SELECT count(*) > 0 FROM pragma_table_info('rights') WHERE name = 'frozen'", [], |r| {
                r.get(0)
            })?;
        if v3 == 3 {
            if !has_frozen {
                conn.execute("ALTER TABLE rights ADD COLUMN frozen INTEGER NOT NULL DEFAULT 1", [])?;
            }
            conn.execute("UPDATE meta SET value = 4 WHERE name = 'schema_version'", [])?;
        }
        conn.execute_batch("COMMIT")?;
        conn.query_row("SELECT value FROM meta WHERE name = 'schema_version'", [], |r| r.get(0))
    };
    // Servers of one cluster may open the file at the same moment; switching
    // it to WAL can fail as busy without waiting, so retry for a while.
    let mut result = setup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while matches!(&result, Err(rusqlite::Error::SqliteFailure(e, _))
        if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
        && std::time::Instant::now() < deadline
    {
        let _ = conn.execute_batch("ROLLBACK");
        std::thread::sleep(std::time::Duration::from_millis(20));
        result = setup();
    }
    match result {
        Ok(SCHEMA_VERSION) => Ok(conn),
        Ok(found) => Err(StoreError::Schema { at: at(), found, reads: SCHEMA_VERSION }),
        Err(error) => Err(StoreError::Sqlite { at: at(), error }),
    }
}

/// How long a transaction waits for another process's to end: about 5 s.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The step of that wait. SQLite's own busy handler sleeps 1, 2, 5, 10, 15,
/// 20, 25 ... 100 ms between tries: a commit behind another server's
/// (servers of a cluster share the file) waited tens of milliseconds for a
/// lock held for one.
const LOCK_STEP: std::time::Duration = std::time::Duration::from_micros(200);

/// SQLite's busy handler: `tries` is how many times it was called for
/// this lock; false gives up (the statement fails as busy).
fn wait_for_lock(tries: i32) -> bool {
    if tries as u128 * LOCK_STEP.as_micros() >= LOCK_WAIT.as_micros() {
        return false;
    }
    std::thread::sleep(LOCK_STEP);
    true
}

/// One transaction's rows (see [`crate::store`] for the semantics).
pub struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    last_version: u64,
}

impl<'a> Tx<'a> {
    pub fn begin(tx: &'a rusqlite::Transaction<'a>) -> rusqlite::Result<Tx<'a>> {
        let last_version: i64 = tx.query_row("SELECT value FROM meta WHERE name = 'last_version'", [], |r| r.get(0))?;
        Ok(Tx { tx, last_version: last_version as u64 })
    }

    pub fn finish(self) -> rusqlite::Result<()> {
        self.tx.execute("UPDATE meta SET value = ?1 WHERE name = 'last_version'", [self.last_version as i64])?;
        Ok(())
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<()> {
        self.tx.prepare_cached(sql)?.execute(p).map(drop)
    }
}

impl Tables for Tx<'_> {
    type Error = rusqlite::Error;

    fn kv_get(&mut self, key: &[u8]) -> rusqlite::Result<Option<Row>> {
        let mut st = self.tx.prepare_cached("SELECT value, version, expires_at, kind FROM kv WHERE key = ?1")?;
        let row: Option<(Vec<u8>, i64, Option<i64>, i64)> =
            st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional()?;
        Ok(row.map(|(v, ver, exp, kind)| (v, ver as u64, exp.map(|e| e as u64), kind)))
    }

    fn kv_put(&mut self, key: &[u8], value: &[u8], expiry: Option<u64>, kind: i64) -> rusqlite::Result<u64> {
        self.last_version += 1;
        self.exec(
            "INSERT INTO kv (key, value, version, expires_at, kind) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,
             expires_at = excluded.expires_at, kind = excluded.kind",
            params![key, value, self.last_version as i64, expiry.map(|e| e as i64), kind],
        )?;
        Ok(self.last_version)
    }

    fn kv_del(&mut self, key: &[u8]) -> rusqlite::Result<u64> {
        self.last_version += 1;
        self.exec("DELETE FROM kv WHERE key = ?1", [key])?;
        Ok(self.last_version)
    }

    fn kv_scan(&mut self, after: u64, limit: u64) -> rusqlite::Result<Vec<TableScanRow>> {
        // Made at the first SCAN or KEYS: a cluster that never scans keeps
        // its writes free of the index's upkeep.
        self.exec("CREATE INDEX IF NOT EXISTS kv_by_version ON kv (version)", [])?;
        let mut st = self.tx.prepare_cached(
            "SELECT key, version, expires_at, kind FROM kv WHERE version > ?1 ORDER BY version LIMIT ?2",
        )?;
        let limit = limit.min(i64::MAX as u64) as i64;
        let after = after.min(i64::MAX as u64) as i64;
        let rows = st.query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, Option<i64>>(2)?.map(|e| e as u64),
                r.get::<_, i64>(3)?,
            ))
        })?;
        rows.collect()
    }

    fn kv_count(&mut self, now: u64) -> rusqlite::Result<u64> {
        let mut st = self.tx.prepare_cached("SELECT count(*) FROM kv WHERE expires_at IS NULL OR expires_at > ?1")?;
        st.query_row([now as i64], |r| r.get::<_, i64>(0)).map(|n| n as u64)
    }

    fn rights(&mut self, slots: &[Slot]) -> rusqlite::Result<HashMap<u16, RightRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT r.holder, r.incarnation, r.epoch,
                 CASE WHEN r.frozen THEN r.renewals ELSE coalesce(h.renewals, 0) - r.renewals END, r.released, r.frozen
             FROM rights r LEFT JOIN holders h ON h.holder = r.holder AND h.incarnation = r.incarnation
             WHERE r.slot = ?1",
        )?;
        let mut out = HashMap::new();
        for slot in slots {
            let row = st
                .query_row([slot.0], |r| {
                    Ok(RightRow {
                        holder: r.get(0)?,
                        incarnation: r.get::<_, i64>(1)? as u64,
                        epoch: Epoch(r.get::<_, i64>(2)? as u64),
                        renewals: r.get::<_, i64>(3)? as u64,
                        released: r.get(4)?,
                        frozen: r.get(5)?,
                    })
                })
                .optional()?;
            if let Some(row) = row {
                out.insert(slot.0, row);
            }
        }
        Ok(out)
    }

    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: &str, incarnation: u64) -> rusqlite::Result<()> {
        let mut st = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO rights (slot, holder, incarnation, epoch, renewals, released, frozen)
             VALUES (?1, ?2, ?3, ?4,
                 coalesce((SELECT renewals FROM holders WHERE holder = ?2 AND incarnation = ?3), 0), 0, 0)",
        )?;
        for (slot, epoch) in rights {
            st.execute(params![slot.0, holder, incarnation as i64, epoch.0 as i64])?;
        }
        Ok(())
    }

    fn rights_of(&mut self, holder: &str, incarnation: u64) -> rusqlite::Result<Vec<(u16, u64, bool)>> {
        let mut st = self.tx.prepare_cached(
            "SELECT slot, epoch, frozen FROM rights WHERE holder = ?1 AND incarnation = ?2 AND released = 0
             ORDER BY slot",
        )?;
        let rows = st.query_map(params![holder, incarnation as i64], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
        })?;
        rows.collect()
    }

    fn renew(&mut self, holder: &str, incarnation: u64) -> rusqlite::Result<()> {
        self.exec(
            "INSERT INTO holders (holder, incarnation, renewals) VALUES (?1, ?2, 1)
             ON CONFLICT (holder, incarnation) DO UPDATE SET renewals = renewals + 1",
            params![holder, incarnation as i64],
        )
    }

    fn freeze(&mut self, holder: &str, incarnation: u64, slots: &[Slot]) -> rusqlite::Result<()> {
        let mut st = self.tx.prepare_cached(
            "UPDATE rights SET frozen = 1, renewals = coalesce(
                 (SELECT renewals FROM holders WHERE holder = ?1 AND incarnation = ?2), 0) - renewals
             WHERE slot = ?3",
        )?;
        for slot in slots {
            st.execute(params![holder, incarnation as i64, slot.0])?;
        }
        Ok(())
    }

    fn unfreeze(&mut self, holder: &str, incarnation: u64, slots: &[Slot]) -> rusqlite::Result<()> {
        let mut st = self.tx.prepare_cached(
            "UPDATE rights SET frozen = 0, renewals = coalesce(
                 (SELECT renewals FROM holders WHERE holder = ?1 AND incarnation = ?2), 0) - (renewals + 1)
             WHERE slot = ?3",
        )?;
        for slot in slots {
            st.execute(params![holder, incarnation as i64, slot.0])?;
        }
        Ok(())
    }

    fn release(&mut self, slots: &[Slot]) -> rusqlite::Result<()> {
        let mut st = self.tx.prepare_cached("UPDATE rights SET released = 1 WHERE slot = ?1")?;
        for slot in slots {
            st.execute([slot.0])?;
        }
        Ok(())
    }

    fn applied(&mut self, req: ReqId) -> rusqlite::Result<Option<Vec<u8>>> {
        let mut st = self.tx.prepare_cached("SELECT result FROM applied WHERE client = ?1 AND seq = ?2")?;
        st.query_row(params![req.client.0 as i64, req.seq as i64], |r| r.get(0)).optional()
    }

    fn record(&mut self, req: ReqId, result: &[u8], now: u64) -> rusqlite::Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO applied (client, seq, result, at) VALUES (?1, ?2, ?3, ?4)",
            params![req.client.0 as i64, req.seq as i64, result, now as i64],
        )
    }

    fn prune(&mut self, now: u64, before: u64) -> rusqlite::Result<()> {
        self.exec("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1", [now as i64])?;
        self.exec("DELETE FROM applied WHERE at < ?1", [before as i64])?;
        // A holder with no right left: a later grant starts its count again
        // (under a new epoch, so no stamp repeats).
        self.exec(
            "DELETE FROM holders WHERE NOT EXISTS
                 (SELECT 1 FROM rights r WHERE r.holder = holders.holder AND r.incarnation = holders.incarnation)",
            [],
        )
    }
}

/// A server's SQLite store (see [`BatchStore`]).
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    pub fn new(conn: Connection) -> SqliteStore {
        SqliteStore { conn }
    }
}

impl BatchStore for SqliteStore {
    fn run_batch(&mut self, me: &Identity, batch: &[Job]) -> Vec<StoreReply> {
        run_batch(&mut self.conn, me, batch, Time(crate::util::unix_ms()))
    }

    fn prune(&mut self) -> Result<(), StoreError> {
        let now = crate::util::unix_ms();
        transaction(&mut self.conn, |t| t.prune(now, now.saturating_sub(APPLIED_KEEP_MS)))
            .map_err(|error| StoreError::Sqlite { at: "a prune".into(), error })
    }

    fn check_mark(&mut self, mark: &ClusterMark, adopt: bool) -> Result<(), StoreError> {
        let found = retry_busy(&mut self.conn, |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let get = |name: &str| -> rusqlite::Result<Option<i64>> {
                tx.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0)).optional()
            };
            let found = match (get("cluster_mode")?, get("cluster_topology")?) {
                (Some(m), Some(t)) => Some(ClusterMark::from_ints(m, t)),
                _ => None,
            };
            if found.is_none() || adopt {
                let (m, t) = mark.to_ints();
                let put = "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)";
                tx.execute(put, params!["cluster_mode", m])?;
                tx.execute(put, params!["cluster_topology", t])?;
                if adopt {
                    tx.execute("DELETE FROM rights", [])?;
                    tx.execute("DELETE FROM holders", [])?;
                    tx.execute("DELETE FROM topology", [])?;
                }
            }
            tx.commit()?;
            Ok(found.filter(|_| !adopt))
        })?;
        found.map_or(Ok(()), |found| mark.matches(&found))
    }

    fn next_master_incarnation(&mut self) -> Result<u64, StoreError> {
        retry_busy(&mut self.conn, |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('master_incarnation', 0)", [])?;
            let n: i64 = tx.query_row(
                "UPDATE meta SET value = value + 1 WHERE name = 'master_incarnation' RETURNING value",
                [],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
    }

    fn save_topology(&mut self, version: u64, spec: &[u8]) -> Result<bool, StoreError> {
        retry_busy(&mut self.conn, |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let newest: Option<i64> = tx.query_row("SELECT max(version) FROM topology", [], |r| r.get(0))?;
            if newest.is_some_and(|n| n as u64 >= version) {
                return Ok(false);
            }
            tx.execute("INSERT INTO topology (version, spec) VALUES (?1, ?2)", params![version as i64, spec])?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn right_holders(&mut self) -> Result<Vec<(u16, String, bool)>, StoreError> {
        retry_busy(&mut self.conn, |conn| {
            let mut q = conn.prepare("SELECT slot, holder, released FROM rights ORDER BY slot")?;
            let rows = q.query_map([], |r| Ok((r.get::<_, i64>(0)? as u16, r.get(1)?, r.get::<_, i64>(2)? != 0)))?;
            rows.collect()
        })
    }

    fn load_topology(&mut self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        retry_busy(&mut self.conn, |conn| {
            conn.query_row("SELECT version, spec FROM topology ORDER BY version DESC LIMIT 1", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .optional()
        })
    }
}

/// Runs `f` (one transaction) until it is not refused as busy, for up to
/// 10 s: another node may hold the write lock for a while (a paused server
/// in the middle of a batch holds it until it resumes).
fn retry_busy<T>(
    conn: &mut Connection,
    mut f: impl FnMut(&mut Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f(conn) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.map_err(|error| StoreError::Sqlite { at: "the cluster's metadata".into(), error }),
        }
    }
}

/// One write transaction: `f`, then the commit; rolled back if either fails.
fn transaction<T>(conn: &mut Connection, f: impl FnOnce(&mut Tx<'_>) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = {
        let mut t = Tx::begin(&tx)?;
        let out = f(&mut t)?;
        t.finish()?;
        out
    };
    tx.commit()?;
    Ok(out)
}

fn run_batch(conn: &mut Connection, me: &Identity, batch: &[Job], now: Time) -> Vec<StoreReply> {
    transaction(conn, |t| store::run_all(t, me, batch.iter().map(|(_, op)| op), now))
        .unwrap_or_else(|e| store::failed_batch(batch, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory of this test run.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fg-sqlite-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A database an older build left (`sql` makes it), opened by this one;
    /// with the schema version it reports.
    fn opened_after(dir: &Path, sql: &str) -> (Connection, i64) {
        let path = dir.join("old.db");
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        let conn = open(&path).unwrap();
        let v = conn.query_row("SELECT value FROM meta WHERE name = 'schema_version'", [], |r| r.get(0)).unwrap();
        (conn, v)
    }

    /// The SQLite store answers a sequence of commands exactly as the
    /// model-checked `MemStore` does.
    #[test]
    fn records_topology_versions() {
        let dir = scratch("topology");
        let mut store = SqliteStore::new(open(&dir.join("t.db")).unwrap());
        crate::store::agreement::check_topology_records(&mut store);
    }

    #[test]
    fn agrees_with_the_in_memory_store() {
        let dir = scratch("agree");
        let mut conn = open(&dir.join("t.db")).unwrap();
        crate::store::agreement::check_agreement(|me, op, now| {
            let tx = conn.transaction().unwrap();
            let mut t = Tx::begin(&tx).unwrap();
            let got = store::run(&mut t, me, op, now).unwrap();
            t.finish().unwrap();
            tx.commit().unwrap();
            got
        });
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A database of schema 3 (renewals counted in each right's row)
    /// opens as schema 4 with its rights frozen at their counts: a taker
    /// that watched a stamp before the upgrade sees the same one.
    #[test]
    fn a_schema_3_database_keeps_its_rights_stamps() {
        let dir = scratch("v3");
        let (mut conn, v) = opened_after(
            &dir,
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE rights (
                 slot INTEGER PRIMARY KEY, holder TEXT NOT NULL, incarnation INTEGER NOT NULL,
                 epoch INTEGER NOT NULL, renewals INTEGER NOT NULL, released INTEGER NOT NULL);
             INSERT INTO meta VALUES ('schema_version', 3), ('last_version', 0);
             INSERT INTO rights VALUES (9, 's0', 7, 2, 5, 0);",
        );
        assert_eq!(v, SCHEMA_VERSION);
        {
            let tx = conn.transaction().unwrap();
            let mut t = Tx::begin(&tx).unwrap();
            let row = t.rights(&[Slot(9)]).unwrap().remove(&9).expect("the right is kept");
            assert_eq!((row.epoch, row.renewals, row.frozen), (Epoch(2), 5, true));
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A renewal writes one row, its holder's, however many rights it holds
    /// (it wrote one per right before schema 4).
    #[test]
    fn a_renewal_writes_one_row() {
        use crate::store::agreement::test_identity;
        use failgroup_model::{Holder, ServerId, StoreOp};
        let dir = scratch("renew");
        let mut conn = open(&dir.join("t.db")).unwrap();
        let me = test_identity(Holder { server: ServerId(0), incarnation: 3 });
        let slots: Vec<Slot> = (0..1000).map(Slot).collect();
        let mut run = |op: StoreOp| {
            let tx = conn.transaction().unwrap();
            let before = tx.total_changes();
            let reply = store::run(&mut Tx::begin(&tx).unwrap(), &me, op, Time(1)).unwrap();
            let changes = tx.total_changes() - before;
            tx.commit().unwrap();
            (reply, changes)
        };
        let (granted, _) = run(StoreOp::Acquire { slots: slots.iter().map(|s| (*s, None)).collect(), lease: 10 });
        let StoreReply::Acquired { granted, .. } = granted else { panic!("{granted:?}") };
        assert_eq!(granted.len(), 1000);
        for _ in 0..2 {
            let (reply, changes) = run(StoreOp::Renew { rights: granted.clone(), lease: 10 });
            assert!(matches!(&reply, StoreReply::Renewed { kept, lost } if kept.len() == 1000 && lost.is_empty()));
            assert_eq!(changes, 1, "rows a renewal of 1,000 rights wrote");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A database of schema 2 (strings only, no type column) opens as this
    /// build's schema with its rows kept as strings.
    #[test]
    fn a_schema_2_database_is_migrated_with_its_keys() {
        let dir = scratch("v2");
        let (mut conn, v) = opened_after(
            &dir,
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,
                 version INTEGER NOT NULL, expires_at INTEGER) WITHOUT ROWID;
             INSERT INTO meta VALUES ('schema_version', 2), ('last_version', 4);
             INSERT INTO kv VALUES (x'6b', x'7631', 4, NULL);",
        );
        assert_eq!(v, SCHEMA_VERSION);
        {
            let tx = conn.transaction().unwrap();
            let mut t = Tx::begin(&tx).unwrap();
            assert_eq!(t.kv_get(b"k").unwrap(), Some((b"v1".to_vec(), 4, None, crate::store::tables::KIND_STRING)));
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The prune follows the first batch, in a transaction of its own: an
    /// expired key, a record of an applied write older than
    /// `APPLIED_KEEP_MS` and the renewal count of a holder with no right
    /// are deleted; a live key, a recent record and a holder with a right
    /// are kept.
    #[test]
    fn the_prune_deletes_only_what_no_command_needs() {
        let dir = scratch("prune");
        let path = dir.join("t.db");
        let now = crate::util::unix_ms() as i64;
        open(&path)
            .unwrap()
            .execute_batch(&format!(
                "INSERT INTO kv VALUES (x'78', x'31', 1, 1, 0), (x'79', x'31', 2, {}, 0), (x'7a', x'31', 3, NULL, 0);
                 INSERT INTO applied VALUES (1, 1, x'00', 1), (1, 2, x'00', {now});
                 INSERT INTO rights VALUES (5, 'kept', 1, 1, 0, 0, 0);
                 INSERT INTO holders VALUES ('gone', 1, 3), ('kept', 1, 4);",
                now + 600_000
            ))
            .unwrap();
        let replies = crate::store::thread::run_reads(SqliteStore::new(open(&path).unwrap()), 1);
        assert!(matches!(replies[..], [StoreReply::Read { value: None, .. }]), "{replies:?}");
        let conn = open(&path).unwrap();
        let rows = |sql: &str| -> Vec<String> {
            let mut q = conn.prepare(sql).unwrap();
            q.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
        };
        assert_eq!(rows("SELECT hex(key) FROM kv ORDER BY key"), ["79", "7A"], "keys left");
        assert_eq!(rows("SELECT CAST(seq AS TEXT) FROM applied"), ["2"], "applied records left");
        assert_eq!(rows("SELECT holder FROM holders"), ["kept"], "holders left");
        std::fs::remove_dir_all(&dir).ok();
    }
}
