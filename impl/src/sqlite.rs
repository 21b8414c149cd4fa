//! The embedded database: SQLite (bundled, WAL) behind the core's [`Store`]
//! interface, and the store thread that gives one server group commit.
//!
//! Tables: `kv` (key, value, version, expiry), `rights` (each slot's serving
//! right: holder, fencing epoch, lease expiry), `applied` (replies of applied
//! writes, so a retried write is applied at most once) and `meta` (schema
//! version, last version). Time is the store's clock: Unix milliseconds of
//! the host, shared by every server of a local cluster.
//!
//! The store thread takes every command queued while the previous commit
//! ran and carries them out in one transaction: one commit (one fsync) for
//! many writes. Replies leave only after the commit; if anything in a batch
//! fails, the whole batch rolls back and every command in it fails.

use failgroup_model::{
    apply_write, Applied, Epoch, OpResult, ReqId, ServerId, Slot, Store, StoreOp, StoreReply, StoreTag, Time, Write,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};

pub const SCHEMA_VERSION: i64 = 1;
/// How long a write's reply is kept for deduplication. Retries of one
/// request end well within it (they are bounded by request timeouts).
const APPLIED_KEEP_MS: u64 = 10 * 60 * 1000;
const MAX_BATCH: usize = 2048;

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Opens (and creates or checks the schema of) the database at `path`.
pub fn open(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open(path).map_err(|e| format!("store {}: {e}", path.display()))?;
    let setup = || -> rusqlite::Result<i64> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before it is acknowledged.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS kv (
                 key BLOB PRIMARY KEY, value BLOB NOT NULL,
                 version INTEGER NOT NULL, expires_at INTEGER) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS rights (
                 slot INTEGER PRIMARY KEY, holder INTEGER NOT NULL,
                 epoch INTEGER NOT NULL, expires INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS applied (
                 client INTEGER NOT NULL, seq INTEGER NOT NULL, result BLOB NOT NULL, at INTEGER NOT NULL,
                 PRIMARY KEY (client, seq)) WITHOUT ROWID;
             INSERT OR IGNORE INTO meta VALUES ('schema_version', 1), ('last_version', 0);
             COMMIT;",
        )?;
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
        Ok(v) => Err(format!("store {}: schema version {v}, this build reads {SCHEMA_VERSION}", path.display())),
        Err(e) => Err(format!("store {}: {e}", path.display())),
    }
}

/// One transaction's view of the database, implementing the core's store
/// semantics (the same as `MemStore`, which the model checker verified).
pub struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    last_version: u64,
    error: Option<rusqlite::Error>,
}

type Row = (Vec<u8>, u64, Option<u64>);

impl<'a> Tx<'a> {
    pub fn begin(tx: &'a rusqlite::Transaction<'a>) -> rusqlite::Result<Tx<'a>> {
        let last_version: i64 = tx.query_row("SELECT value FROM meta WHERE name = 'last_version'", [], |r| r.get(0))?;
        Ok(Tx { tx, last_version: last_version as u64, error: None })
    }

    pub fn finish(self) -> rusqlite::Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.tx.execute("UPDATE meta SET value = ?1 WHERE name = 'last_version'", [self.last_version as i64])?;
        Ok(())
    }

    /// A live key: expired keys are absent.
    fn get(&self, key: &[u8], now: Time) -> rusqlite::Result<Option<Row>> {
        let mut st = self.tx.prepare_cached("SELECT value, version, expires_at FROM kv WHERE key = ?1")?;
        let row: Option<(Vec<u8>, i64, Option<i64>)> =
            st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
        Ok(row
            .map(|(v, ver, exp)| (v, ver as u64, exp.map(|e| e as u64)))
            .filter(|(_, _, exp)| exp.is_none_or(|t| now.0 < t)))
    }

    fn current(&self, key: &[u8], now: Time) -> rusqlite::Result<(Option<Vec<u8>>, u64, bool)> {
        Ok(match self.get(key, now)? {
            Some((v, ver, exp)) => (Some(v), ver, exp.is_some()),
            None => (None, 0, false),
        })
    }

    fn right(&self, slot: Slot) -> rusqlite::Result<Option<(ServerId, Epoch, u64)>> {
        let mut st = self.tx.prepare_cached("SELECT holder, epoch, expires FROM rights WHERE slot = ?1")?;
        st.query_row([slot.0], |r| {
            Ok((ServerId(r.get(0)?), Epoch(r.get::<_, i64>(1)? as u64), r.get::<_, i64>(2)? as u64))
        })
        .optional()
    }

    fn holds(&self, from: ServerId, slot: Slot, epoch: Epoch, now: Time) -> rusqlite::Result<bool> {
        Ok(matches!(self.right(slot)?, Some((h, e, exp)) if h == from && e == epoch && now.0 < exp))
    }

    fn applied(&self, req: ReqId) -> rusqlite::Result<Option<OpResult>> {
        let mut st = self.tx.prepare_cached("SELECT result FROM applied WHERE client = ?1 AND seq = ?2")?;
        let blob: Option<Vec<u8>> =
            st.query_row(params![req.client.0 as i64, req.seq as i64], |r| r.get(0)).optional()?;
        Ok(blob.and_then(|b| postcard::from_bytes(&b).ok()))
    }

    fn write(&mut self, key: &[u8], write: Write, now: Time) -> rusqlite::Result<StoreReply> {
        let old = self.get(key, now)?.map(|(v, _, exp)| (v, exp.map(Time)));
        let (value, expiry, result) = match apply_write(old, write, now) {
            Applied::Write { value, expiry, result } => (value, expiry.map(|t| t.0), result),
            Applied::NotSet => {
                let (value, version, expiring) = self.current(key, now)?;
                return Ok(StoreReply::Written { version, value, expiring, result: OpResult::NotSet });
            }
            Applied::Rejected(e) => return Ok(StoreReply::Rejected(e)),
        };
        self.last_version += 1;
        let version = self.last_version;
        match &value {
            Some(v) => {
                let mut st = self.tx.prepare_cached(
                    "INSERT INTO kv (key, value, version, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,
                     expires_at = excluded.expires_at",
                )?;
                st.execute(params![key, v, version as i64, expiry.map(|e| e as i64)])?;
            }
            None => {
                self.tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?.execute([key])?;
            }
        }
        Ok(StoreReply::Written { version, value, expiring: expiry.is_some(), result })
    }

    /// Records a write's answer for its retries (a rejection as an error).
    fn record(&self, req: ReqId, reply: &StoreReply, now: Time) -> rusqlite::Result<()> {
        let result = match reply {
            StoreReply::Written { result, .. } => result.clone(),
            StoreReply::Rejected(e) => OpResult::Err(e.clone()),
            _ => return Ok(()),
        };
        let blob = postcard::to_allocvec(&result).expect("encoding to a Vec cannot fail");
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO applied (client, seq, result, at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![req.client.0 as i64, req.seq as i64, blob, now.0 as i64])?;
        Ok(())
    }

    fn run(&mut self, from: ServerId, op: StoreOp, now: Time) -> rusqlite::Result<StoreReply> {
        Ok(match op {
            StoreOp::Read { key } => {
                let (value, version, expiring) = self.current(&key, now)?;
                StoreReply::Read { value, version, expiring }
            }
            StoreOp::Ttl { key } => StoreReply::Ttl(match self.get(&key, now)? {
                None => -2,
                Some((_, _, None)) => -1,
                Some((_, _, Some(t))) => t.saturating_sub(now.0) as i64,
            }),
            StoreOp::Write { slot, fence, req, key, write } => {
                match self.applied(req)? {
                    Some(OpResult::Err(e)) => return Ok(StoreReply::Rejected(e)),
                    Some(result) => {
                        // Applied before: the same answer, with the key as it is now.
                        let (value, version, expiring) = self.current(&key, now)?;
                        return Ok(StoreReply::Written { version, value, expiring, result });
                    }
                    None => {}
                }
                if let Some(epoch) = fence {
                    if !self.holds(from, slot, epoch, now)? {
                        return Ok(StoreReply::Fenced);
                    }
                }
                let reply = self.write(&key, write, now)?;
                self.record(req, &reply, now)?;
                reply
            }
            StoreOp::Acquire { slots, lease } => {
                let (mut granted, mut held) = (Vec::new(), Vec::new());
                let mut up = self.tx.prepare_cached(
                    "INSERT OR REPLACE INTO rights (slot, holder, epoch, expires) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for slot in slots {
                    match self.right(slot)? {
                        Some((holder, _, expires)) if holder != from && now.0 < expires => held.push((slot, holder)),
                        current => {
                            // Always a new epoch: writes under the old one are fenced.
                            let epoch = Epoch(current.map_or(0, |r| r.1 .0) + 1);
                            up.execute(params![slot.0, from.0, epoch.0 as i64, now.0.saturating_add(lease) as i64])?;
                            granted.push((slot, epoch));
                        }
                    }
                }
                StoreReply::Acquired { granted, held }
            }
            StoreOp::Renew { rights, lease } => {
                // Read this holder's rights once, then extend the valid ones.
                let mut st =
                    self.tx.prepare_cached("SELECT slot, epoch FROM rights WHERE holder = ?1 AND expires > ?2")?;
                let mine: std::collections::HashMap<u16, u64> = st
                    .query_map(params![from.0, now.0 as i64], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                    .collect::<rusqlite::Result<_>>()?;
                let (kept, lost): (Vec<_>, Vec<_>) =
                    rights.into_iter().partition(|(s, e)| mine.get(&s.0) == Some(&e.0));
                let until = now.0.saturating_add(lease) as i64;
                if kept.len() == mine.len() {
                    self.tx
                        .prepare_cached("UPDATE rights SET expires = ?1 WHERE holder = ?2 AND expires > ?3")?
                        .execute(params![until, from.0, now.0 as i64])?;
                } else {
                    let mut up = self.tx.prepare_cached("UPDATE rights SET expires = ?1 WHERE slot = ?2")?;
                    for (slot, _) in &kept {
                        up.execute(params![until, slot.0])?;
                    }
                }
                StoreReply::Renewed { kept, lost }
            }
            StoreOp::Release { rights } => {
                let mut up = self.tx.prepare_cached(
                    "UPDATE rights SET expires = ?1 WHERE slot = ?2 AND holder = ?3 AND epoch = ?4 AND expires > ?1",
                )?;
                for (slot, epoch) in rights {
                    up.execute(params![now.0 as i64, slot.0, from.0, epoch.0 as i64])?;
                }
                StoreReply::Released
            }
        })
    }

    /// Deletes expired keys and deduplication records past their window.
    pub fn prune(&self, now: Time) -> rusqlite::Result<()> {
        self.tx.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1", [now.0 as i64])?;
        self.tx.execute("DELETE FROM applied WHERE at < ?1", [now.0.saturating_sub(APPLIED_KEEP_MS) as i64])?;
        Ok(())
    }
}

impl Store for Tx<'_> {
    fn execute(&mut self, from: ServerId, op: StoreOp, now: Time) -> StoreReply {
        if self.error.is_some() {
            return StoreReply::Failed("transaction aborted".into());
        }
        match self.run(from, op, now) {
            Ok(reply) => reply,
            Err(e) => {
                let msg = e.to_string();
                self.error = Some(e);
                StoreReply::Failed(msg)
            }
        }
    }
}

pub type Job = (StoreTag, StoreOp);
pub type Done = (StoreTag, StoreReply);

/// Figures of the store thread, for INFO.
#[derive(Default)]
pub struct StoreStats {
    pub commits: std::sync::atomic::AtomicU64,
    pub commands: std::sync::atomic::AtomicU64,
}

/// The store thread's loop: batches, one transaction each, replies after
/// the commit. Ends when every job sender is gone.
pub fn run_store(
    mut conn: Connection,
    from: ServerId,
    jobs: Receiver<Job>,
    done: Sender<Done>,
    wake: impl Fn(),
    stats: std::sync::Arc<StoreStats>,
) {
    let mut batches = 0u64;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let now = Time(unix_ms());
        batches += 1;
        let replies = run_batch(&mut conn, from, &batch, now, batches % 1000 == 1);
        stats.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats.commands.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for ((tag, _), reply) in batch.into_iter().zip(replies) {
            if done.send((tag, reply)).is_err() {
                return;
            }
        }
        wake();
    }
}

fn run_batch(conn: &mut Connection, from: ServerId, batch: &[Job], now: Time, prune: bool) -> Vec<StoreReply> {
    let attempt = |conn: &mut Connection| -> rusqlite::Result<Vec<StoreReply>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let replies = {
            let mut t = Tx::begin(&tx)?;
            let replies: Vec<StoreReply> = batch.iter().map(|(_, op)| t.execute(from, op.clone(), now)).collect();
            if prune {
                t.prune(now)?;
            }
            t.finish()?;
            replies
        };
        tx.commit()?;
        Ok(replies)
    };
    match attempt(conn) {
        Ok(replies) => replies,
        Err(e) => {
            tracing::warn!(error = %e, commands = batch.len(), "store batch failed and rolled back");
            batch.iter().map(|_| StoreReply::Failed(e.to_string())).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failgroup_model::{ClientId, MemStore};

    /// The SQLite store answers a sequence of commands exactly as the
    /// model-checked `MemStore` does.
    #[test]
    fn agrees_with_the_in_memory_store() {
        let dir = std::env::temp_dir().join(format!("fg-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut conn = open(&dir.join("t.db")).unwrap();
        let mut mem = MemStore::new(None);
        let req = |seq| ReqId { client: ClientId(1), seq };
        let k = || b"k".to_vec();
        let w = |seq, write| StoreOp::Write { slot: Slot(1), fence: Some(Epoch(1)), req: req(seq), key: k(), write };
        let ops = vec![
            (ServerId(0), StoreOp::Acquire { slots: vec![Slot(1)], lease: 100 }),
            (ServerId(1), StoreOp::Acquire { slots: vec![Slot(1)], lease: 100 }),
            (ServerId(0), w(1, Write::Set(b"5".to_vec()))),
            (ServerId(0), w(2, Write::Incr(2))),
            (ServerId(0), w(2, Write::Incr(2))),
            (ServerId(1), w(3, Write::Del)),
            (ServerId(0), StoreOp::Read { key: k() }),
            (ServerId(0), StoreOp::Renew { rights: vec![(Slot(1), Epoch(1)), (Slot(2), Epoch(1))], lease: 100 }),
            (ServerId(0), StoreOp::Release { rights: vec![(Slot(1), Epoch(1))] }),
            (ServerId(1), StoreOp::Acquire { slots: vec![Slot(1)], lease: 100 }),
            (ServerId(0), w(4, Write::Set(b"x".to_vec()))),
        ];
        for (i, (from, op)) in ops.into_iter().enumerate() {
            let now = Time(1000 + i as u64);
            let tx = conn.transaction().unwrap();
            let mut t = Tx::begin(&tx).unwrap();
            let got = t.execute(from, op.clone(), now);
            t.finish().unwrap();
            tx.commit().unwrap();
            assert_eq!(got, mem.execute(from, op.clone(), now), "command {i}: {op:?}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
