//! One PostgreSQL transaction as the store's rows ([`Tables`]).

use super::protocol::{Param, PgConn, PgError, PgRow};
use crate::store::{Job, RightRow, Row, TableScanRow, Tables};
use failgroup_model::{Epoch, ReqId, Slot, StoreOp, Time};
use std::collections::HashMap;

const KV_GET: &str = "SELECT value, version, expires_at, kind FROM failgroup_kv WHERE key_hash = sha256($1)";
const APPLIED_GET: &str = "SELECT result FROM failgroup_applied WHERE client = $1 AND seq = $2";
/// A right's holder count is looked up row by row (by the holders' key),
/// not joined: a join scans the whole (tiny) holders table, and a
/// `SERIALIZABLE` transaction that scans a table conflicts with every
/// other server's renewal ([`PgTx::open`]).
const RIGHTS_GET: &str = "SELECT r.slot, r.holder, r.incarnation, r.epoch,
         CASE WHEN r.frozen <> 0 THEN r.renewals ELSE coalesce(
             (SELECT h.renewals FROM failgroup_holders h WHERE h.holder = r.holder AND h.incarnation = r.incarnation),
             0) - r.renewals END,
         r.released, r.frozen
     FROM failgroup_rights r WHERE r.slot = ANY($1)";
/// Index scans wherever an index serves: PostgreSQL's serializable
/// isolation locks what a transaction read, the rows an index scan read
/// but the whole table a sequential scan read, and the planner scans the
/// small tables (holders, rights at first) sequentially. Every batch then
/// read every holder's renewal count, and two servers' overlapping
/// renewals rolled one of them back, again and again under load
/// (`tests::two_servers_batches_do_not_conflict`).
const INDEX_SCANS: &str = "SET LOCAL enable_seqscan = off";
/// Waits for every transaction that writes a table a batch reads or writes
/// and keeps new ones from writing until this one ends; reads go on.
const LOCK_WRITERS_OUT: &str =
    "LOCK TABLE failgroup_rights, failgroup_holders, failgroup_kv, failgroup_applied IN EXCLUSIVE MODE";
const NOW: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8";
const VERSIONS: &str = "SELECT nextval('failgroup_version') FROM generate_series(1, $1)";

/// A write held until the batch's last round trip.
enum Pending {
    Put { key: Vec<u8>, value: Vec<u8>, version: u64, expiry: Option<u64>, kind: i64 },
    Del { key: Vec<u8> },
    Record { req: ReqId, result: Vec<u8>, at: u64 },
}

/// One transaction's rows, read ahead and written behind: the rows a batch
/// needs are read in its first round trip (one statement each, pipelined),
/// its writes are sent with the COMMIT in its last. A batch of plain reads
/// and writes is three round trips however many commands it has; rights
/// commands (acquire, renew, release) add one or two each.
pub(super) struct PgTx<'a> {
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
    Ok(Some((r.bytes(0)?.unwrap_or_default(), r.int_req(1)? as u64, r.int(2)?.map(|e| e as u64), r.int_req(3)?)))
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
                frozen: r.int_req(6)? != 0,
            };
            Ok((r.int_req(0)? as u16, row))
        })
        .collect()
}

impl<'a> PgTx<'a> {
    /// A batch's transaction, not alone ([`open`](Self::open)), for tests.
    #[cfg(test)]
    pub(super) fn begin(c: &'a mut PgConn, batch: &[Job]) -> Result<(PgTx<'a>, Time), PgError> {
        PgTx::open(c, batch, false)
    }

    /// Begins the transaction and reads what `batch` will need, in one
    /// round trip; returns the transaction and the database's time. With
    /// `alone`, once no other server writes (until the commit, none can):
    /// the tables' `EXCLUSIVE` locks are taken before the transaction's
    /// first query, so its snapshot follows every write committed before
    /// and no transaction it overlaps has written or will write before it
    /// commits. It has no conflict out, so serializable isolation never
    /// rolls it back (it may still wait out a lock, an error retried like a
    /// conflict). For a batch that conflicted again and again: under a
    /// steady load of other servers' writes on the same index pages, a
    /// batch was otherwise retried for the whole request timeout and
    /// failed.
    pub(super) fn open(c: &'a mut PgConn, batch: &[Job], alone: bool) -> Result<(PgTx<'a>, Time), PgError> {
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut reqs: Vec<(i64, i64)> = Vec::new();
        let mut slots: Vec<i64> = Vec::new();
        for (_, op) in batch {
            match op {
                StoreOp::Read { key } | StoreOp::Ttl { key } | StoreOp::Inspect { key, .. } => keys.push(key),
                StoreOp::Atomic { ops, req, slot, .. } => {
                    keys.extend(ops.iter().flat_map(|o| o.keys()));
                    reqs.push((req.client.0 as i64, req.seq as i64));
                    slots.push(slot.0 as i64);
                }
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
        let mut stmts: Vec<(&str, &[Param])> = vec![("BEGIN ISOLATION LEVEL SERIALIZABLE", &[])];
        if alone {
            stmts.push((LOCK_WRITERS_OUT, &[]));
        }
        stmts.extend([(INDEX_SCANS, &[][..]), (NOW, &[]), (RIGHTS_GET, &slot_param), (VERSIONS, &count)]);
        stmts.extend(key_params.iter().map(|p| (KV_GET, &p[..])));
        stmts.extend(req_params.iter().map(|p| (APPLIED_GET, &p[..])));
        let mut results = c.pipeline(&stmts)?.into_iter();
        let mut next = || results.next().ok_or_else(|| PgError::Protocol("a result is missing".into()));
        next()?; // BEGIN
        if alone {
            next()?; // LOCK TABLE
        }
        next()?; // SET LOCAL
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

    /// For the rest of the transaction, a lock not granted at once fails
    /// the statement (55P03) instead of waiting.
    pub(super) fn no_lock_wait(&mut self) -> Result<(), PgError> {
        self.exec("SET LOCAL lock_timeout = 1", &[])
    }

    /// Sends the held writes and the COMMIT in one round trip.
    pub(super) fn commit(mut self) -> Result<(), PgError> {
        self.send_pending(true)
    }

    /// Sends the held writes, with the COMMIT if `commit`: a query over many
    /// rows (SCAN, DBSIZE) must see the batch's writes before it.
    fn send_pending(&mut self, commit: bool) -> Result<(), PgError> {
        const PUT: &str = "INSERT INTO failgroup_kv (key_hash, key, value, version, expires_at, kind)
             VALUES (sha256($1), $1, $2, $3, $4, $5)
             ON CONFLICT (key_hash) DO UPDATE SET value = excluded.value, version = excluded.version,
             expires_at = excluded.expires_at, kind = excluded.kind";
        const DEL: &str = "DELETE FROM failgroup_kv WHERE key_hash = sha256($1)";
        const RECORD: &str = "INSERT INTO failgroup_applied (client, seq, result, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (client, seq) DO UPDATE SET result = excluded.result, at = excluded.at";
        let pending = std::mem::take(&mut self.pending);
        let params: Vec<(&str, Vec<Param>)> = pending
            .iter()
            .map(|p| match p {
                Pending::Put { key, value, version, expiry, kind } => (
                    PUT,
                    vec![
                        Param::Bytes(key),
                        Param::Bytes(value),
                        int(*version),
                        expiry.map_or(Param::NullInt, int),
                        Param::Int(*kind),
                    ],
                ),
                Pending::Del { key } => (DEL, vec![Param::Bytes(key)]),
                Pending::Record { req, result, at } => {
                    (RECORD, vec![int(req.client.0), int(req.seq), Param::Bytes(result), int(*at)])
                }
            })
            .collect();
        let mut stmts: Vec<(&str, &[Param])> = params.iter().map(|(sql, p)| (*sql, &p[..])).collect();
        if commit {
            stmts.push(("COMMIT", &[]));
        }
        if stmts.is_empty() {
            return Ok(());
        }
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

    fn kv_put(&mut self, key: &[u8], value: &[u8], expiry: Option<u64>, kind: i64) -> Result<u64, PgError> {
        let version = self.version()?;
        self.kv.insert(key.to_vec(), Some((value.to_vec(), version, expiry, kind)));
        self.pending.push(Pending::Put { key: key.to_vec(), value: value.to_vec(), version, expiry, kind });
        Ok(version)
    }

    fn kv_del(&mut self, key: &[u8]) -> Result<u64, PgError> {
        let version = self.version()?;
        self.kv.insert(key.to_vec(), None);
        self.pending.push(Pending::Del { key: key.to_vec() });
        Ok(version)
    }

    fn kv_scan(&mut self, after: u64, limit: u64) -> Result<Vec<TableScanRow>, PgError> {
        self.send_pending(false)?;
        const SCAN: &str = "SELECT key, version, expires_at, kind FROM failgroup_kv WHERE version > $1
             ORDER BY version LIMIT $2";
        let cap = |n: u64| int(n.min(i64::MAX as u64));
        let rows = self.c.query(SCAN, &[cap(after), cap(limit)])?;
        rows.iter()
            .map(|r| {
                Ok((r.bytes(0)?.unwrap_or_default(), r.int_req(1)? as u64, r.int(2)?.map(|e| e as u64), r.int_req(3)?))
            })
            .collect()
    }

    fn kv_count(&mut self, now: u64) -> Result<u64, PgError> {
        self.send_pending(false)?;
        const COUNT: &str = "SELECT count(*) FROM failgroup_kv WHERE expires_at IS NULL OR expires_at > $1";
        let rows = self.c.query(COUNT, &[int(now)])?;
        Ok(rows.first().map(|r| r.int_req(0)).transpose()?.unwrap_or(0) as u64)
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
            "INSERT INTO failgroup_rights (slot, holder, incarnation, epoch, renewals, released, frozen)
             SELECT s, $3, $4, e, coalesce(
                 (SELECT renewals FROM failgroup_holders WHERE holder = $3 AND incarnation = $4), 0), 0, 0
             FROM unnest($1::int8[], $2::int8[]) AS r(s, e)
             ON CONFLICT (slot) DO UPDATE SET holder = excluded.holder, incarnation = excluded.incarnation,
             epoch = excluded.epoch, renewals = excluded.renewals, released = 0, frozen = 0",
            &[Param::IntArray(&slots), Param::IntArray(&epochs), Param::Bytes(holder.as_bytes()), int(incarnation)],
        )
    }

    fn rights_of(&mut self, holder: &str, incarnation: u64) -> Result<Vec<(u16, u64, bool)>, PgError> {
        let rows = self.c.query(
            "SELECT slot, epoch, frozen FROM failgroup_rights WHERE holder = $1 AND incarnation = $2 AND released = 0
             ORDER BY slot",
            &[Param::Bytes(holder.as_bytes()), int(incarnation)],
        )?;
        rows.iter().map(|r| Ok((r.int_req(0)? as u16, r.int_req(1)? as u64, r.int_req(2)? != 0))).collect()
    }

    fn renew(&mut self, holder: &str, incarnation: u64) -> Result<(), PgError> {
        self.rights.clear();
        self.exec(
            "INSERT INTO failgroup_holders (holder, incarnation, renewals) VALUES ($1, $2, 1)
             ON CONFLICT (holder, incarnation) DO UPDATE SET renewals = failgroup_holders.renewals + 1",
            &[Param::Bytes(holder.as_bytes()), int(incarnation)],
        )
    }

    fn freeze(&mut self, holder: &str, incarnation: u64, slots: &[Slot]) -> Result<(), PgError> {
        self.rights.clear();
        let ids: Vec<i64> = slots.iter().map(|s| s.0 as i64).collect();
        self.exec(
            "UPDATE failgroup_rights SET frozen = 1, renewals = coalesce(
                 (SELECT renewals FROM failgroup_holders WHERE holder = $1 AND incarnation = $2), 0) - renewals
             WHERE slot = ANY($3)",
            &[Param::Bytes(holder.as_bytes()), int(incarnation), Param::IntArray(&ids)],
        )
    }

    fn unfreeze(&mut self, holder: &str, incarnation: u64, slots: &[Slot]) -> Result<(), PgError> {
        self.rights.clear();
        let ids: Vec<i64> = slots.iter().map(|s| s.0 as i64).collect();
        self.exec(
            "UPDATE failgroup_rights SET frozen = 0, renewals = coalesce(
                 (SELECT renewals FROM failgroup_holders WHERE holder = $1 AND incarnation = $2), 0) - (renewals + 1)
             WHERE slot = ANY($3)",
            &[Param::Bytes(holder.as_bytes()), int(incarnation), Param::IntArray(&ids)],
        )
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
        self.exec("DELETE FROM failgroup_applied WHERE at < $1", &[int(before)])?;
        // A holder with no right left: a later grant starts its count again
        // (under a new epoch, so no stamp repeats).
        self.exec(
            "DELETE FROM failgroup_holders h WHERE NOT EXISTS (SELECT 1 FROM failgroup_rights r
                 WHERE r.holder = h.holder AND r.incarnation = h.incarnation)",
            &[],
        )
    }
}
