//! The PostgreSQL store: the tables of [`crate::tables`] as `failgroup_*`
//! tables of the user's database, over the blocking client of [`crate::pg`].
//!
//! Each batch of a server's store thread is one `SERIALIZABLE` transaction:
//! batches of different servers then behave as if run one after the other,
//! which is what the fencing check (a right read, then a write under it)
//! and `Acquire` (a right read, then replaced) need. A serialization failure
//! retries the batch; any other error rolls it back and fails every command
//! in it. Versions come from a sequence (no row every batch would lock).
//! Keys are indexed by their SHA-256 (a B-tree entry must fit in a third of
//! a page; keys, as in Redis, may be far longer).
//! Time is the database's clock (`clock_timestamp()`), read once per
//! transaction, so leases do not depend on the servers' clocks.

use crate::pg::{Param, PgConn, PgError, PgUrl};
use crate::tables::{self, BatchStore, Job, RightRow, Row, Tables, APPLIED_KEEP_MS};
use failgroup_model::{Epoch, ReqId, ServerId, Slot, StoreReply, Time};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS failgroup_meta (name text PRIMARY KEY, value bigint NOT NULL);
    CREATE TABLE IF NOT EXISTS failgroup_kv (
        key_hash bytea PRIMARY KEY, key bytea NOT NULL, value bytea NOT NULL,
        version bigint NOT NULL, expires_at bigint);
    CREATE TABLE IF NOT EXISTS failgroup_rights (
        slot bigint PRIMARY KEY, holder bigint NOT NULL, epoch bigint NOT NULL, expires bigint NOT NULL);
    CREATE TABLE IF NOT EXISTS failgroup_applied (
        client bigint NOT NULL, seq bigint NOT NULL, result bytea NOT NULL, at bigint NOT NULL,
        PRIMARY KEY (client, seq));
    CREATE SEQUENCE IF NOT EXISTS failgroup_version;
    INSERT INTO failgroup_meta VALUES ('schema_version', 1) ON CONFLICT DO NOTHING;";

/// Connects, creates the tables if they are missing (under an advisory
/// lock: servers start together) and checks the schema's version.
pub fn open(url: &PgUrl) -> Result<PgConn, String> {
    let fail = |e: PgError| format!("store postgres://{}@{}:{}/{}: {e}", url.user, url.host, url.port, url.dbname);
    let mut c = PgConn::connect(url).map_err(fail)?;
    c.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock(7243107); {SCHEMA} COMMIT;")).map_err(fail)?;
    let rows = c.query("SELECT value FROM failgroup_meta WHERE name = 'schema_version'", &[]).map_err(fail)?;
    let v = rows.first().map(|r| r.int_req(0)).transpose().map_err(fail)?.unwrap_or(0);
    match v {
        SCHEMA_VERSION => Ok(c),
        v if v > SCHEMA_VERSION => Err(fail(PgError {
            code: None,
            msg: format!("schema version {v} is newer than this build's {SCHEMA_VERSION}: upgrade failgroup"),
        })),
        v => Err(fail(PgError {
            code: None,
            msg: format!("schema version {v} is unknown (this build: {SCHEMA_VERSION})"),
        })),
    }
}

/// One transaction's rows.
struct PgTx<'a>(&'a mut PgConn);

impl PgTx<'_> {
    fn exec(&mut self, sql: &str, p: &[Param]) -> Result<(), PgError> {
        self.0.query(sql, p).map(drop)
    }
    fn one_int(&mut self, sql: &str, p: &[Param]) -> Result<i64, PgError> {
        let rows = self.0.query(sql, p)?;
        rows.first().ok_or_else(|| PgError { code: None, msg: "no row".into() })?.int_req(0)
    }
}

fn int(v: u64) -> Param<'static> {
    Param::Int(v as i64)
}

impl Tables for PgTx<'_> {
    type Error = PgError;

    fn kv_get(&mut self, key: &[u8]) -> Result<Option<Row>, PgError> {
        let sql = "SELECT value, version, expires_at FROM failgroup_kv WHERE key_hash = sha256($1)";
        let rows = self.0.query(sql, &[Param::Bytes(key)])?;
        let Some(r) = rows.first() else { return Ok(None) };
        Ok(Some((r.bytes(0)?.unwrap_or_default(), r.int_req(1)? as u64, r.int(2)?.map(|e| e as u64))))
    }

    fn kv_put(&mut self, key: &[u8], value: &[u8], expiry: Option<u64>) -> Result<u64, PgError> {
        let exp = expiry.map_or(Param::NullInt, int);
        let v = self.one_int(
            "INSERT INTO failgroup_kv (key_hash, key, value, version, expires_at)
             VALUES (sha256($1), $1, $2, nextval('failgroup_version'), $3)
             ON CONFLICT (key_hash) DO UPDATE SET value = excluded.value, version = excluded.version,
             expires_at = excluded.expires_at RETURNING version",
            &[Param::Bytes(key), Param::Bytes(value), exp],
        )?;
        Ok(v as u64)
    }

    fn kv_del(&mut self, key: &[u8]) -> Result<u64, PgError> {
        let sql =
            "WITH d AS (DELETE FROM failgroup_kv WHERE key_hash = sha256($1)) SELECT nextval('failgroup_version')";
        Ok(self.one_int(sql, &[Param::Bytes(key)])? as u64)
    }

    fn rights(&mut self, slots: &[Slot]) -> Result<HashMap<u16, RightRow>, PgError> {
        let ids: Vec<i64> = slots.iter().map(|s| s.0 as i64).collect();
        let rows = self.0.query(
            "SELECT slot, holder, epoch, expires FROM failgroup_rights WHERE slot = ANY($1)",
            &[Param::IntArray(&ids)],
        )?;
        rows.iter()
            .map(|r| {
                let row = (ServerId(r.int_req(1)? as u16), Epoch(r.int_req(2)? as u64), r.int_req(3)? as u64);
                Ok((r.int_req(0)? as u16, row))
            })
            .collect()
    }

    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: ServerId, expires: u64) -> Result<(), PgError> {
        if rights.is_empty() {
            return Ok(());
        }
        let slots: Vec<i64> = rights.iter().map(|r| r.0 .0 as i64).collect();
        let epochs: Vec<i64> = rights.iter().map(|r| r.1 .0 as i64).collect();
        self.exec(
            "INSERT INTO failgroup_rights (slot, holder, epoch, expires)
             SELECT s, $3, e, $4 FROM unnest($1::int8[], $2::int8[]) AS r(s, e)
             ON CONFLICT (slot) DO UPDATE SET holder = excluded.holder, epoch = excluded.epoch,
             expires = excluded.expires",
            &[Param::IntArray(&slots), Param::IntArray(&epochs), int(holder.0 as u64), int(expires)],
        )
    }

    fn rights_of(&mut self, holder: ServerId, now: u64) -> Result<HashMap<u16, u64>, PgError> {
        let rows = self.0.query(
            "SELECT slot, epoch FROM failgroup_rights WHERE holder = $1 AND expires > $2",
            &[int(holder.0 as u64), int(now)],
        )?;
        rows.iter().map(|r| Ok((r.int_req(0)? as u16, r.int_req(1)? as u64))).collect()
    }

    fn extend_all(&mut self, holder: ServerId, now: u64, until: u64) -> Result<(), PgError> {
        self.exec(
            "UPDATE failgroup_rights SET expires = $1 WHERE holder = $2 AND expires > $3",
            &[int(until), int(holder.0 as u64), int(now)],
        )
    }

    fn extend(&mut self, slots: &[Slot], until: u64) -> Result<(), PgError> {
        let ids: Vec<i64> = slots.iter().map(|s| s.0 as i64).collect();
        self.exec("UPDATE failgroup_rights SET expires = $1 WHERE slot = ANY($2)", &[int(until), Param::IntArray(&ids)])
    }

    fn release(&mut self, rights: &[(Slot, Epoch)], holder: ServerId, now: u64) -> Result<(), PgError> {
        let slots: Vec<i64> = rights.iter().map(|r| r.0 .0 as i64).collect();
        let epochs: Vec<i64> = rights.iter().map(|r| r.1 .0 as i64).collect();
        self.exec(
            "UPDATE failgroup_rights AS f SET expires = $1
             FROM unnest($2::int8[], $3::int8[]) AS r(s, e)
             WHERE f.slot = r.s AND f.epoch = r.e AND f.holder = $4 AND f.expires > $1",
            &[int(now), Param::IntArray(&slots), Param::IntArray(&epochs), int(holder.0 as u64)],
        )
    }

    fn applied(&mut self, req: ReqId) -> Result<Option<Vec<u8>>, PgError> {
        let rows = self.0.query(
            "SELECT result FROM failgroup_applied WHERE client = $1 AND seq = $2",
            &[int(req.client.0), int(req.seq)],
        )?;
        rows.first().map(|r| r.bytes(0)).transpose().map(Option::flatten)
    }

    fn record(&mut self, req: ReqId, result: &[u8], now: u64) -> Result<(), PgError> {
        self.exec(
            "INSERT INTO failgroup_applied (client, seq, result, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (client, seq) DO UPDATE SET result = excluded.result, at = excluded.at",
            &[int(req.client.0), int(req.seq), Param::Bytes(result), int(now)],
        )
    }

    fn prune(&mut self, now: u64, before: u64) -> Result<(), PgError> {
        self.exec("DELETE FROM failgroup_kv WHERE expires_at IS NOT NULL AND expires_at <= $1", &[int(now)])?;
        self.exec("DELETE FROM failgroup_applied WHERE at < $1", &[int(before)])
    }
}

/// A server's PostgreSQL store: one connection (the store thread runs one
/// batch at a time), opened again after a failure.
pub struct PgStore {
    url: PgUrl,
    conn: Option<PgConn>,
    batches: u64,
}

impl PgStore {
    pub fn new(url: PgUrl, conn: PgConn) -> PgStore {
        PgStore { url, conn: Some(conn), batches: 0 }
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

    fn attempt(&mut self, from: ServerId, batch: &[Job], prune: bool) -> Result<Vec<StoreReply>, PgError> {
        let c = self.conn()?;
        c.batch("BEGIN ISOLATION LEVEL SERIALIZABLE")?;
        let body = |c: &mut PgConn| -> Result<Vec<StoreReply>, PgError> {
            let rows = c.query("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8", &[])?;
            let now = Time(rows.first().map(|r| r.int_req(0)).transpose()?.unwrap_or(0) as u64);
            let mut t = PgTx(c);
            let replies = tables::run_all(&mut t, from, batch.iter().map(|(_, op)| op), now)?;
            if prune {
                t.prune(now.0, now.0.saturating_sub(APPLIED_KEEP_MS))?;
            }
            Ok(replies)
        };
        match body(c) {
            Ok(replies) => {
                c.batch("COMMIT")?;
                Ok(replies)
            }
            Err(e) => {
                if !c.broken {
                    let _ = c.batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }
}

impl BatchStore for PgStore {
    /// Serialization failures (another server's batch touched the same
    /// rows) and a lost connection are retried for up to twice the timeout,
    /// after a short random pause, resp. 200 ms: the batch is one
    /// transaction, so it either committed or left no trace, and running it
    /// again is safe (a write that did commit answers from `applied`).
    fn run_batch(&mut self, from: ServerId, batch: &[Job]) -> Vec<StoreReply> {
        self.batches += 1;
        let prune = self.batches % 1000 == 1;
        let deadline = Instant::now() + 2 * self.url.timeout;
        let result = loop {
            match self.attempt(from, batch, prune) {
                Err(e) if e.retryable() && Instant::now() < deadline => {
                    let pause = 2 + crate::server::random_u64() % 30;
                    std::thread::sleep(Duration::from_millis(pause));
                }
                Err(e) if e.code.is_none() && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "store connection lost; trying again");
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => break other,
            }
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, commands = batch.len(), "store batch failed and rolled back");
            batch.iter().map(|_| StoreReply::Failed(e.to_string())).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failgroup_model::{MemStore, Store};

    /// The PostgreSQL store answers a sequence of commands exactly as the
    /// model-checked `MemStore` does. Needs `FAILGROUP_TEST_PG` (an admin
    /// URL, e.g. from tests/scripts/postgres.sh); `.ci/run` sets it.
    #[test]
    fn agrees_with_the_in_memory_store() {
        let Some(admin) = crate::pg::test_database("fg_unit_agreement") else { return };
        let mut conn = open(&admin).unwrap();
        let mut mem = MemStore::new(None);
        for (i, (from, op, now)) in tables::agreement_script().into_iter().enumerate() {
            conn.batch("BEGIN ISOLATION LEVEL SERIALIZABLE").unwrap();
            let got = tables::run(&mut PgTx(&mut conn), from, op.clone(), now).unwrap();
            conn.batch("COMMIT").unwrap();
            let want = mem.execute(from, op.clone(), now);
            // Versions come from a sequence shared with nothing else here,
            // so they match too.
            assert_eq!(got, want, "command {i}: {op:?}");
        }
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_error() {
        let Some(url) = crate::pg::test_database("fg_unit_schema") else { return };
        let mut c = open(&url).unwrap();
        c.batch("UPDATE failgroup_meta SET value = 99 WHERE name = 'schema_version'").unwrap();
        let e = open(&url).err().expect("a newer schema must be refused");
        assert!(e.contains("schema version 99 is newer"), "{e}");
    }

    #[test]
    fn an_unreachable_database_fails_within_the_timeout() {
        let url = PgUrl::parse("postgres://u@127.0.0.1:1/db?timeout_ms=500").unwrap();
        let t = Instant::now();
        let e = open(&url).err().expect("nothing listens on port 1");
        assert!(e.contains("127.0.0.1:1"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
