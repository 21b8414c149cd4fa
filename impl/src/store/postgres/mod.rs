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

pub mod protocol;

use crate::store::postgres::protocol::PgRow;
use crate::store::postgres::protocol::{Param, PgConn, PgError, PgUrl};
use crate::store::{self, BatchStore, ClusterMark, Identity, Job, RightRow, Row, StoreError, Tables, APPLIED_KEEP_MS};
use failgroup_model::{Epoch, ReqId, Slot, StoreOp, StoreReply, Time};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// 2: rights name their holder and its incarnation and count renewals (no
/// lease time); the cluster's mark and the master's incarnation.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS failgroup_meta (name text PRIMARY KEY, value bigint NOT NULL);
    CREATE TABLE IF NOT EXISTS failgroup_kv (
        key_hash bytea PRIMARY KEY, key bytea NOT NULL, value bytea NOT NULL,
        version bigint NOT NULL, expires_at bigint);
    CREATE TABLE IF NOT EXISTS failgroup_rights (
        slot bigint PRIMARY KEY, holder bytea NOT NULL, incarnation bigint NOT NULL, epoch bigint NOT NULL,
        renewals bigint NOT NULL, released bigint NOT NULL);
    CREATE TABLE IF NOT EXISTS failgroup_applied (
        client bigint NOT NULL, seq bigint NOT NULL, result bytea NOT NULL, at bigint NOT NULL,
        PRIMARY KEY (client, seq));
    CREATE SEQUENCE IF NOT EXISTS failgroup_version;
    INSERT INTO failgroup_meta VALUES ('schema_version', 2) ON CONFLICT DO NOTHING;";

/// From schema 1 (rights by a server's position, with a lease time): those
/// rows are leases and mean nothing now; every node takes its rights afresh.
const MIGRATE_1: &str = "
    DROP TABLE failgroup_rights;
    CREATE TABLE failgroup_rights (
        slot bigint PRIMARY KEY, holder bytea NOT NULL, incarnation bigint NOT NULL, epoch bigint NOT NULL,
        renewals bigint NOT NULL, released bigint NOT NULL);
    UPDATE failgroup_meta SET value = 2 WHERE name = 'schema_version';";

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
    let v = version(&mut c)?;
    match v {
        SCHEMA_VERSION => Ok(c),
        v if v > SCHEMA_VERSION => Err(fail(PgError::Unusable(format!(
            "schema version {v} is newer than this build's {SCHEMA_VERSION}: upgrade failgroup"
        )))),
        v => Err(fail(PgError::Unusable(format!("schema version {v} is unknown (this build: {SCHEMA_VERSION})")))),
    }
}

const KV_GET: &str = "SELECT value, version, expires_at FROM failgroup_kv WHERE key_hash = sha256($1)";
const APPLIED_GET: &str = "SELECT result FROM failgroup_applied WHERE client = $1 AND seq = $2";
const RIGHTS_GET: &str =
    "SELECT slot, holder, incarnation, epoch, renewals, released FROM failgroup_rights WHERE slot = ANY($1)";
const NOW: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8";
const VERSIONS: &str = "SELECT nextval('failgroup_version') FROM generate_series(1, $1)";

/// A write held until the batch's last round trip.
enum Pending {
    Put { key: Vec<u8>, value: Vec<u8>, version: u64, expiry: Option<u64> },
    Del { key: Vec<u8> },
    Record { req: ReqId, result: Vec<u8>, at: u64 },
}

/// One transaction's rows, read ahead and written behind: the rows a batch
/// needs are read in its first round trip (one statement each, pipelined),
/// its writes are sent with the COMMIT in its last. A batch of plain reads
/// and writes is three round trips however many commands it has; rights
/// commands (acquire, renew, release) add one or two each.
struct PgTx<'a> {
    c: &'a mut PgConn,
    /// Rows read or written in this transaction (None: no row).
    kv: HashMap<Vec<u8>, Option<Row>>,
    applied: HashMap<(u64, u64), Option<Vec<u8>>>,
    rights: HashMap<u16, Option<RightRow>>,
    /// Versions drawn ahead from the sequence, smallest first.
    versions: std::collections::VecDeque<u64>,
    pending: Vec<Pending>,
}

fn int(v: u64) -> Param<'static> {
    Param::Int(v as i64)
}

fn kv_row(r: Option<&PgRow>) -> Result<Option<Row>, PgError> {
    let Some(r) = r else { return Ok(None) };
    Ok(Some((r.bytes(0)?.unwrap_or_default(), r.int_req(1)? as u64, r.int(2)?.map(|e| e as u64))))
}

fn right_rows(rows: &[PgRow]) -> Result<Vec<(u16, RightRow)>, PgError> {
    rows.iter()
        .map(|r| {
            let row = RightRow {
                holder: String::from_utf8_lossy(&r.bytes(1)?.unwrap_or_default()).into_owned(),
                incarnation: r.int_req(2)? as u64,
                epoch: Epoch(r.int_req(3)? as u64),
                renewals: r.int_req(4)? as u64,
                released: r.int_req(5)? != 0,
            };
            Ok((r.int_req(0)? as u16, row))
        })
        .collect()
}

impl<'a> PgTx<'a> {
    /// Begins the transaction and reads what `batch` will need, in one
    /// round trip; returns the transaction and the database's time.
    fn begin(c: &'a mut PgConn, batch: &[Job]) -> Result<(PgTx<'a>, Time), PgError> {
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut reqs: Vec<(i64, i64)> = Vec::new();
        let mut slots: Vec<i64> = Vec::new();
        for (_, op) in batch {
            match op {
                StoreOp::Read { key } | StoreOp::Ttl { key } => keys.push(key),
                StoreOp::Write { key, req, slot, .. } => {
                    keys.push(key);
                    reqs.push((req.client.0 as i64, req.seq as i64));
                    slots.push(slot.0 as i64);
                }
                _ => {}
            }
        }
        keys.sort_unstable();
        keys.dedup();
        reqs.sort_unstable();
        reqs.dedup();
        slots.sort_unstable();
        slots.dedup();
        let key_params: Vec<[Param; 1]> = keys.iter().map(|k| [Param::Bytes(k)]).collect();
        let req_params: Vec<[Param; 2]> = reqs.iter().map(|(c, s)| [Param::Int(*c), Param::Int(*s)]).collect();
        let slot_param = [Param::IntArray(&slots)];
        let count = [Param::Int(reqs.len() as i64)];
        let mut stmts: Vec<(&str, &[Param])> = vec![
            ("BEGIN ISOLATION LEVEL SERIALIZABLE", &[]),
            (NOW, &[]),
            (RIGHTS_GET, &slot_param),
            (VERSIONS, &count),
        ];
        stmts.extend(key_params.iter().map(|p| (KV_GET, &p[..])));
        stmts.extend(req_params.iter().map(|p| (APPLIED_GET, &p[..])));
        let mut results = c.pipeline(&stmts)?.into_iter();
        let mut next = || results.next().ok_or_else(|| PgError::Protocol("a result is missing".into()));
        next()?; // BEGIN
        let now = Time(next()?.first().map(|r| r.int_req(0)).transpose()?.unwrap_or(0) as u64);
        let mut rights: HashMap<u16, Option<RightRow>> = slots.iter().map(|s| (*s as u16, None)).collect();
        for (slot, row) in right_rows(&next()?)? {
            rights.insert(slot, Some(row));
        }
        let mut versions: Vec<u64> =
            next()?.iter().map(|r| r.int_req(0).map(|v| v as u64)).collect::<Result<_, _>>()?;
        versions.sort_unstable();
        let mut kv = HashMap::new();
        for k in &keys {
            kv.insert(k.to_vec(), kv_row(next()?.first())?);
        }
        let mut applied = HashMap::new();
        for (client, seq) in &reqs {
            let blob = next()?.first().map(|r| r.bytes(0)).transpose()?.flatten();
            applied.insert((*client as u64, *seq as u64), blob);
        }
        Ok((PgTx { c, kv, applied, rights, versions: versions.into(), pending: Vec::new() }, now))
    }

    /// Sends the held writes and the COMMIT in one round trip.
    fn commit(self) -> Result<(), PgError> {
        const PUT: &str = "INSERT INTO failgroup_kv (key_hash, key, value, version, expires_at)
             VALUES (sha256($1), $1, $2, $3, $4)
             ON CONFLICT (key_hash) DO UPDATE SET value = excluded.value, version = excluded.version,
             expires_at = excluded.expires_at";
        const DEL: &str = "DELETE FROM failgroup_kv WHERE key_hash = sha256($1)";
        const RECORD: &str = "INSERT INTO failgroup_applied (client, seq, result, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (client, seq) DO UPDATE SET result = excluded.result, at = excluded.at";
        let params: Vec<(&str, Vec<Param>)> = self
            .pending
            .iter()
            .map(|p| match p {
                Pending::Put { key, value, version, expiry } => (
                    PUT,
                    vec![Param::Bytes(key), Param::Bytes(value), int(*version), expiry.map_or(Param::NullInt, int)],
                ),
                Pending::Del { key } => (DEL, vec![Param::Bytes(key)]),
                Pending::Record { req, result, at } => {
                    (RECORD, vec![int(req.client.0), int(req.seq), Param::Bytes(result), int(*at)])
                }
            })
            .collect();
        let mut stmts: Vec<(&str, &[Param])> = params.iter().map(|(sql, p)| (*sql, &p[..])).collect();
        stmts.push(("COMMIT", &[]));
        self.c.pipeline(&stmts).map(drop)
    }

    fn exec(&mut self, sql: &str, p: &[Param]) -> Result<(), PgError> {
        self.c.query(sql, p).map(drop)
    }

    fn version(&mut self) -> Result<u64, PgError> {
        if let Some(v) = self.versions.pop_front() {
            return Ok(v);
        }
        let rows = self.c.query(VERSIONS, &[Param::Int(1)])?;
        Ok(rows.first().ok_or_else(|| PgError::Protocol("no version".into()))?.int_req(0)? as u64)
    }
}

impl Tables for PgTx<'_> {
    type Error = PgError;

    fn kv_get(&mut self, key: &[u8]) -> Result<Option<Row>, PgError> {
        if let Some(row) = self.kv.get(key) {
            return Ok(row.clone());
        }
        let row = kv_row(self.c.query(KV_GET, &[Param::Bytes(key)])?.first())?;
        self.kv.insert(key.to_vec(), row.clone());
        Ok(row)
    }

    fn kv_put(&mut self, key: &[u8], value: &[u8], expiry: Option<u64>) -> Result<u64, PgError> {
        let version = self.version()?;
        self.kv.insert(key.to_vec(), Some((value.to_vec(), version, expiry)));
        self.pending.push(Pending::Put { key: key.to_vec(), value: value.to_vec(), version, expiry });
        Ok(version)
    }

    fn kv_del(&mut self, key: &[u8]) -> Result<u64, PgError> {
        let version = self.version()?;
        self.kv.insert(key.to_vec(), None);
        self.pending.push(Pending::Del { key: key.to_vec() });
        Ok(version)
    }

    fn rights(&mut self, slots: &[Slot]) -> Result<HashMap<u16, RightRow>, PgError> {
        if slots.iter().all(|s| self.rights.contains_key(&s.0)) {
            return Ok(slots.iter().filter_map(|s| self.rights[&s.0].clone().map(|r| (s.0, r))).collect());
        }
        let ids: Vec<i64> = slots.iter().map(|s| s.0 as i64).collect();
        let rows = self.c.query(RIGHTS_GET, &[Param::IntArray(&ids)])?;
        Ok(right_rows(&rows)?.into_iter().collect())
    }

    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: &str, incarnation: u64) -> Result<(), PgError> {
        if rights.is_empty() {
            return Ok(());
        }
        self.rights.clear();
        let slots: Vec<i64> = rights.iter().map(|r| r.0 .0 as i64).collect();
        let epochs: Vec<i64> = rights.iter().map(|r| r.1 .0 as i64).collect();
        self.exec(
            "INSERT INTO failgroup_rights (slot, holder, incarnation, epoch, renewals, released)
             SELECT s, $3, $4, e, 0, 0 FROM unnest($1::int8[], $2::int8[]) AS r(s, e)
             ON CONFLICT (slot) DO UPDATE SET holder = excluded.holder, incarnation = excluded.incarnation,
             epoch = excluded.epoch, renewals = 0, released = 0",
            &[Param::IntArray(&slots), Param::IntArray(&epochs), Param::Bytes(holder.as_bytes()), int(incarnation)],
        )
    }

    fn rights_of(&mut self, holder: &str, incarnation: u64) -> Result<HashMap<u16, u64>, PgError> {
        let rows = self.c.query(
            "SELECT slot, epoch FROM failgroup_rights WHERE holder = $1 AND incarnation = $2 AND released = 0",
            &[Param::Bytes(holder.as_bytes()), int(incarnation)],
        )?;
        rows.iter().map(|r| Ok((r.int_req(0)? as u16, r.int_req(1)? as u64))).collect()
    }

    fn renew_all(&mut self, holder: &str, incarnation: u64) -> Result<(), PgError> {
        self.rights.clear();
        self.exec(
            "UPDATE failgroup_rights SET renewals = renewals + 1
             WHERE holder = $1 AND incarnation = $2 AND released = 0",
            &[Param::Bytes(holder.as_bytes()), int(incarnation)],
        )
    }

    fn renew(&mut self, slots: &[Slot]) -> Result<(), PgError> {
        self.rights.clear();
        let ids: Vec<i64> = slots.iter().map(|s| s.0 as i64).collect();
        self.exec("UPDATE failgroup_rights SET renewals = renewals + 1 WHERE slot = ANY($1)", &[Param::IntArray(&ids)])
    }

    fn release(&mut self, slots: &[Slot]) -> Result<(), PgError> {
        self.rights.clear();
        let ids: Vec<i64> = slots.iter().map(|s| s.0 as i64).collect();
        self.exec("UPDATE failgroup_rights SET released = 1 WHERE slot = ANY($1)", &[Param::IntArray(&ids)])
    }

    fn applied(&mut self, req: ReqId) -> Result<Option<Vec<u8>>, PgError> {
        if let Some(blob) = self.applied.get(&(req.client.0, req.seq)) {
            return Ok(blob.clone());
        }
        let rows = self.c.query(APPLIED_GET, &[int(req.client.0), int(req.seq)])?;
        rows.first().map(|r| r.bytes(0)).transpose().map(Option::flatten)
    }

    fn record(&mut self, req: ReqId, result: &[u8], now: u64) -> Result<(), PgError> {
        self.applied.insert((req.client.0, req.seq), Some(result.to_vec()));
        self.pending.push(Pending::Record { req, result: result.to_vec(), at: now });
        Ok(())
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
    /// How long a batch is tried again after conflicts and lost connections.
    retry_for: Duration,
}

impl PgStore {
    pub fn new(url: PgUrl, conn: PgConn, retry_for: Duration) -> PgStore {
        PgStore { url, conn: Some(conn), batches: 0, retry_for }
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

    fn attempt(&mut self, me: &Identity, batch: &[Job], prune: bool) -> Result<Vec<StoreReply>, PgError> {
        let c = self.conn()?;
        let result = (|| {
            let (mut t, now) = PgTx::begin(c, batch)?;
            let replies = store::run_all(&mut t, me, batch.iter().map(|(_, op)| op), now)?;
            if prune {
                t.prune(now.0, now.0.saturating_sub(APPLIED_KEEP_MS))?;
            }
            t.commit()?;
            Ok(replies)
        })();
        if result.is_err() && !c.broken {
            let _ = c.batch("ROLLBACK");
        }
        result
    }
}

impl BatchStore for PgStore {
    /// Serialization failures and locks not granted in time (another
    /// server's batch touched the same rows) and a lost connection are
    /// retried for up to `retry_for` (at least twice the timeout), after a
    /// short random pause, resp. 200 ms: the batch is one transaction, so it
    /// either committed or left no trace, and running it again is safe (a
    /// write that did commit answers from `applied`). A server cut off from
    /// the database thus keeps its requests until the link heals or the
    /// request timeout passes; once its rights have lapsed meanwhile, the
    /// retried batch is fenced and the requests go to the new holder.
    fn run_batch(&mut self, me: &Identity, batch: &[Job]) -> Vec<StoreReply> {
        self.batches += 1;
        let prune = self.batches % 1000 == 1;
        let deadline = Instant::now() + self.retry_for.max(2 * self.url.timeout);
        let result = loop {
            match self.attempt(me, batch, prune) {
                Err(e) if e.retryable() && Instant::now() < deadline => {
                    let pause = 2 + crate::util::random_u64() % 30;
                    std::thread::sleep(Duration::from_millis(pause));
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
                c.batch("DELETE FROM failgroup_rights")?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use failgroup_model::StoreTag;

    /// The PostgreSQL store answers a sequence of commands exactly as the
    /// model-checked `MemStore` does. Needs `FAILGROUP_TEST_PG` (an admin
    /// URL, e.g. from tests/scripts/postgres.sh); `.ci/run` sets it.
    #[test]
    fn agrees_with_the_in_memory_store() {
        let Some(admin) = crate::store::postgres::protocol::test_database("fg_unit_agreement") else { return };
        let mut conn = open(&admin).unwrap();
        store::check_agreement(|me, op, now| {
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
        let jobs: Vec<Job> = store::agreement_script().into_iter().map(|(_, op, _)| (StoreTag::Op(0), op)).collect();
        let (mut t, _) = PgTx::begin(&mut conn, &jobs).unwrap();
        store::check_agreement(|me, op, now| store::run(&mut t, me, op, now).unwrap());
        t.commit().unwrap();
        // What was committed is what the store now holds.
        let (mut t, _) = PgTx::begin(&mut conn, &[]).unwrap();
        assert_eq!(t.kv_get(b"k").unwrap().map(|r| r.0), None, "the script ends with the key deleted");
        assert_eq!(t.rights(&[Slot(1)]).unwrap()[&1].epoch, Epoch(3));
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

    #[test]
    fn an_unreachable_database_fails_within_the_timeout() {
        let url = PgUrl::parse("postgres://u@127.0.0.1:1/db?timeout_ms=500").unwrap();
        let t = Instant::now();
        let e = open(&url).err().expect("nothing listens on port 1").to_string();
        assert!(e.contains("127.0.0.1:1"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
