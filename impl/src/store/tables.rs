//! Databases as the core's store: a backend provides row operations
//! ([`Tables`]); [`run`] carries a [`StoreOp`] out with the model crate's
//! `store::execute`, the one implementation of the store's semantics, which
//! the model checker runs over `MemStore`.
//!
//! Tables: `kv` (key, value, version, expiry, type: a hash's fields are
//! one encoded value), `rights` (each slot's serving
//! right: the holder's server name and incarnation, fencing epoch, released,
//! frozen, and `renewals`: the holder's count at the grant, or the frozen
//! stamp), `holders` (each holder's renewal count: a renewal writes this
//! one row), `applied` (replies of applied writes, so a retried
//! write is applied at most once). Rights carry no time: a taker waits on
//! its own clock (see `failgroup_model::store`). Times are the store's
//! clock in Unix milliseconds, taken once per transaction, for keys' time
//! to live and for pruning only.

use failgroup_model::store;
use failgroup_model::{
    Data, Epoch, Held, Holder, Kind, KvRow, Mode, OpResult, ReqId, RightRecord, Rows, Rules, ScanRow, ServerId, Slot,
    StoreOp, StoreReply, Time,
};
use std::collections::HashMap;
use std::sync::Arc;

/// How long a write's reply is kept for deduplication. Retries of one
/// request end well within it (they are bounded by request timeouts).
pub const APPLIED_KEEP_MS: u64 = 10 * 60 * 1000;

/// A `kv` row: value, version, expiry, type ([`KIND_STRING`] or [`KIND_HASH`]).
pub type Row = (Vec<u8>, u64, Option<u64>, i64);

/// The `kv` table's type of a string: its value is the string's bytes.
pub const KIND_STRING: i64 = 0;
/// The `kv` table's type of a hash: its value is the fields and values in
/// order, encoded by postcard.
pub const KIND_HASH: i64 = 1;

/// A value as a `kv` row holds it: type and bytes.
fn encode(data: &Data) -> (i64, std::borrow::Cow<'_, [u8]>) {
    match data {
        Data::Str(v) => (KIND_STRING, std::borrow::Cow::Borrowed(&v[..])),
        Data::Hash(h) => {
            (KIND_HASH, std::borrow::Cow::Owned(postcard::to_allocvec(h).expect("encoding to a Vec cannot fail")))
        }
    }
}

/// A `kv` row's value. Bytes of a type this build does not know, or a hash
/// it cannot decode, read as a string: shown, never dropped.
fn decode(kind: i64, bytes: Vec<u8>) -> Data {
    match kind {
        KIND_HASH => match postcard::from_bytes(&bytes) {
            Ok(h) => Data::Hash(h),
            Err(_) => Data::Str(bytes),
        },
        _ => Data::Str(bytes),
    }
}

fn kind_of(kind: i64) -> Kind {
    match kind {
        KIND_HASH => Kind::Hash,
        _ => Kind::String,
    }
}

/// A `rights` row. The holder is a server's name (never its position in the
/// config) and the incarnation of its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RightRow {
    pub holder: String,
    pub incarnation: u64,
    pub epoch: Epoch,
    /// The renewals its stamp shows: the holder's count (from the
    /// `holders` table) less its count at the grant, or the frozen stamp.
    pub renewals: u64,
    pub released: bool,
    pub frozen: bool,
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

/// A row as a database's SCAN reads it: key, version, expiry (Unix ms), type.
pub type TableScanRow = (Vec<u8>, u64, Option<u64>, i64);

/// Row operations of one transaction, as a database keeps them: holders
/// by name, results as bytes, times as Unix milliseconds. [`Named`] turns
/// them into the model's [`Rows`], over which `store::execute` decides.
pub trait Tables {
    type Error;
    /// The row of `key`, expired or not.
    fn kv_get(&mut self, key: &[u8]) -> Result<Option<Row>, Self::Error>;
    /// Writes `key` (a value of type `kind`) under a new version (greater
    /// than every earlier one), returned.
    fn kv_put(&mut self, key: &[u8], value: &[u8], expiry: Option<u64>, kind: i64) -> Result<u64, Self::Error>;
    /// Deletes `key`; returns a new version, as a write does.
    fn kv_del(&mut self, key: &[u8]) -> Result<u64, Self::Error>;
    /// Up to `limit` rows of versions above `after`, in version order: key,
    /// version, expiry, type (by an index on the version: SQLite makes it at the
    /// first call, PostgreSQL with its schema).
    fn kv_scan(&mut self, after: u64, limit: u64) -> Result<Vec<TableScanRow>, Self::Error>;
    /// How many keys are not expired at `now`.
    fn kv_count(&mut self, now: u64) -> Result<u64, Self::Error>;
    /// The rights rows of `slots`; a slot never acquired has none.
    fn rights(&mut self, slots: &[Slot]) -> Result<HashMap<u16, RightRow>, Self::Error>;
    /// Gives the holder (name, incarnation) each slot under its epoch, with
    /// no renewal yet and not released.
    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: &str, incarnation: u64) -> Result<(), Self::Error>;
    /// The rights the holder holds (not released), in slot order: slot,
    /// epoch, frozen.
    fn rights_of(&mut self, holder: &str, incarnation: u64) -> Result<Vec<(u16, u64, bool)>, Self::Error>;
    /// Counts a renewal of the holder: one `holders` row.
    fn renew(&mut self, holder: &str, incarnation: u64) -> Result<(), Self::Error>;
    /// Freezes each slot's right (not frozen) at its stamp now: `renewals`
    /// becomes the holder's count less the count at the grant.
    fn freeze(&mut self, holder: &str, incarnation: u64, slots: &[Slot]) -> Result<(), Self::Error>;
    /// Each slot's right (frozen) follows its holder's count again, one
    /// past its frozen stamp: `renewals` becomes the count at a grant that
    /// gives that stamp.
    fn unfreeze(&mut self, holder: &str, incarnation: u64, slots: &[Slot]) -> Result<(), Self::Error>;
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
        Ok(self.tables.kv_get(key)?.map(|(v, ver, exp, kind)| (decode(kind, v), ver, exp.map(Time))))
    }

    fn kv_put(&mut self, key: &[u8], value: &Data, expiry: Option<Time>) -> Result<u64, T::Error> {
        let (kind, bytes) = encode(value);
        self.tables.kv_put(key, &bytes, expiry.map(|t| t.0), kind)
    }

    fn kv_del(&mut self, key: &[u8]) -> Result<u64, T::Error> {
        self.tables.kv_del(key)
    }

    fn kv_scan(&mut self, after: u64, limit: u64) -> Result<Vec<ScanRow>, T::Error> {
        Ok(self.tables.kv_scan(after, limit)?.into_iter().map(|(k, v, e, t)| (k, v, e.map(Time), kind_of(t))).collect())
    }

    fn kv_count(&mut self, now: Time) -> Result<u64, T::Error> {
        self.tables.kv_count(now.0)
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
                    frozen: r.frozen,
                    renewed_at: Time::ZERO,
                })
            })
            .collect())
    }

    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: Holder, _now: Time) -> Result<(), T::Error> {
        let name = self.name_of(holder).to_string();
        self.tables.set_rights(rights, &name, holder.incarnation)
    }

    fn rights_of(&mut self, holder: Holder) -> Result<Vec<Held>, T::Error> {
        let name = self.name_of(holder).to_string();
        let mine = self.tables.rights_of(&name, holder.incarnation)?;
        Ok(mine.into_iter().map(|(s, e, frozen)| Held { slot: Slot(s), epoch: Epoch(e), frozen }).collect())
    }

    fn renew(&mut self, holder: Holder, _now: Time) -> Result<(), T::Error> {
        let name = self.name_of(holder).to_string();
        self.tables.renew(&name, holder.incarnation)
    }

    fn freeze(&mut self, holder: Holder, slots: &[Slot]) -> Result<(), T::Error> {
        let name = self.name_of(holder).to_string();
        self.tables.freeze(&name, holder.incarnation, slots)
    }

    fn unfreeze(&mut self, holder: Holder, slots: &[Slot]) -> Result<(), T::Error> {
        let name = self.name_of(holder).to_string();
        self.tables.unfreeze(&name, holder.incarnation, slots)
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
/// batch half done, so renewing once is renewing twice (the stamps change
/// either way). A server whose store was slow (a lost connection retried
/// for seconds) queues a renewal every third of a lease; each reads all
/// its rights.
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
