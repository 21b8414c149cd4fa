//! The store interface the core speaks to (c2, c6), and an in-memory store.
//!
//! The database holds every key. Serving rights (leases with fencing epochs)
//! live beside the data, so a write fenced by a stale epoch is refused in the
//! same atomic step that would apply it. Writes carry their request id and
//! are applied at most once, whatever the retries and duplicates.
//!
//! The store keeps no lease time. A holder's record counts its renewals,
//! and a right's [`Stamp`] is its epoch and its holder's count; a server
//! that wants a right another process holds reads the stamp, waits a whole
//! lease on its own clock, and takes the right only if the stamp is still
//! the same (no renewal came meanwhile). The holder trusts a right for less
//! than a lease from the moment it sent the renewal, so by then it has
//! stopped trusting it, whatever the store's clock does. The store's clock
//! decides only when keys with a time to live expire.
//!
//! A renewal writes one record, the holder's, however many rights it
//! holds; a right's stamp counts its holder's renewals since the grant. A
//! right its holder left out of a renewal is frozen: its stamp stays where
//! it was, so a taker can have it a lease later, while the holder renews
//! the rest; asked for again, it moves on by one and follows the count.

use crate::config::Mode;
use crate::config::Mutant;
use crate::types::{
    Data, DataRef, DbRead, Deadline, Epoch, ErrorKind, ExpireCond, Guard, HashRead, HashWrite, Inspect, Key, KeysWrite,
    Kind, Op, OpResult, ReqId, ServerId, SetCond, SetOpts, Slot, Time, Update, Value, WRONGTYPE,
};
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

/// A write to one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Write {
    Set(Value),
    Del,
    Incr(i64),
    SetWith(Value, SetOpts),
    /// Milliseconds to live from the store's now; 0 or less deletes.
    Expire(i64),
    Update(Update),
}

/// What an atomic operation left of one key it touched, for the caches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyAfter {
    pub key: Key,
    pub value: Option<Value>,
    pub version: u64,
    pub keep: Keep,
}

/// How long a server may keep a key it read or wrote in its cache, as the
/// store sees the key when it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Keep {
    /// A string without a time to live, or an absent key: until it changes.
    Ever,
    /// A string with a time to live: this many milliseconds of the store's
    /// clock are left of it at the store's now.
    For(u64),
    /// Not a string (a hash): never served from a cache.
    Not,
}

/// The error of an unfenced write in a `linearizable` cluster.
pub const UNFENCED: &str = "unfenced write refused: this cluster is linearizable";

/// A command from a server to the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StoreOp {
    /// Read a key and its version.
    Read { key: Key },
    /// A key's remaining time to live (PTTL).
    Ttl { key: Key },
    /// A read of a key that is not its value (STRLEN, TYPE, EXPIRETIME...).
    Inspect { key: Key, what: Inspect },
    /// A read of the whole database (SCAN, KEYS, DBSIZE).
    Db(DbRead),
    /// Operations of one slot applied in order, atomically: fenced and
    /// applied at most once like a write (MULTI/EXEC, multi-key commands).
    Atomic { slot: Slot, fence: Option<Epoch>, req: ReqId, ops: Vec<Op> },
    /// Write a key; with `fence`, only if the sender holds the slot's right
    /// at that epoch and it has not expired.
    Write { slot: Slot, fence: Option<Epoch>, req: ReqId, key: Key, write: Write },
    /// Take the rights of slots, each with a new epoch: a slot no one holds
    /// or one released, one this very process holds, or one whose record
    /// still carries the stamp given (watched unchanged for a whole lease).
    /// `lease` serves only the `StoreClockLeases` mutant.
    Acquire { slots: Vec<(Slot, Option<Stamp>)>, lease: u64 },
    /// Renew rights still held at the given epochs (a new stamp each).
    Renew { rights: Vec<(Slot, Epoch)>, lease: u64 },
    /// Give rights up (hand-back).
    Release { rights: Vec<(Slot, Epoch)> },
}

/// The store's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StoreReply {
    /// `version` is 0 for an absent key; `keep`: how long it may be
    /// cached (`value` is none for a key that is not a string).
    Read {
        value: Option<Value>,
        version: u64,
        keep: Keep,
    },
    /// The write is committed; `value` is the key's value after it (as in
    /// `Read`).
    Written {
        version: u64,
        value: Option<Value>,
        keep: Keep,
        result: OpResult,
    },
    /// Milliseconds to live, -1 without expiry, -2 absent.
    Ttl(i64),
    /// The answer to an [`StoreOp::Inspect`].
    Inspected(OpResult),
    /// An atomic operation's result (a [`OpResult::Many`]) and what it
    /// left of each key it read or wrote, for the cache.
    Atomic {
        result: OpResult,
        keys: Vec<KeyAfter>,
    },
    /// Not applied: the write is invalid (INCR of a non-integer).
    Rejected(ErrorKind),
    /// Not applied: the sender does not hold the right at that epoch.
    Fenced,
    /// `held`: slots another process holds, with its server and the
    /// record's stamp now.
    Acquired {
        granted: Vec<(Slot, Epoch)>,
        held: Vec<(Slot, ServerId, Stamp)>,
    },
    Renewed {
        kept: Vec<(Slot, Epoch)>,
        lost: Vec<(Slot, Epoch)>,
    },
    Released,
    /// The store could not carry the command out.
    Failed(String),
}

/// Who sends a store command: a server, and which run of its process (a
/// number drawn at start). Two processes with one server's name are two
/// holders: a new one waits out the old one's lease like any other taker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Holder {
    pub server: ServerId,
    pub incarnation: u64,
}

/// Which renewal of a right a record shows: unchanged for a whole lease,
/// the holder has stopped trusting the right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub epoch: Epoch,
    pub renewals: u64,
}

/// What a store does. The runtime's databases implement it; the core only
/// emits [`StoreOp`]s and consumes [`StoreReply`]s.
pub trait Store {
    /// Carries out one command atomically. `now` is the store's clock
    /// (used for keys' time to live only).
    fn execute(&mut self, from: Holder, op: StoreOp, now: Time) -> StoreReply;
}

/// A slot's serving right as the store records it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RightRecord {
    pub holder: Holder,
    pub epoch: Epoch,
    /// The renewals its stamp shows, counted from the grant: its holder's
    /// renewals since, or, frozen, those when its holder last left it out
    /// of a renewal. (`MemStore` keeps here, for a right not frozen, its
    /// holder's count at the grant.)
    pub renewals: u64,
    pub released: bool,
    /// Left out of its holder's last renewal: `renewals` no longer follows
    /// the holder's count.
    pub frozen: bool,
    /// The store's time of the last grant or renewal: read only by the
    /// `StoreClockLeases` mutant, which times leases with it.
    pub renewed_at: Time,
}

/// A right as its holder's renewal reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Held {
    pub slot: Slot,
    pub epoch: Epoch,
    pub frozen: bool,
}

impl RightRecord {
    pub fn stamp(&self) -> Stamp {
        Stamp { epoch: self.epoch, renewals: self.renewals }
    }

    /// Whether `from` holds this right at `epoch`.
    pub fn held_by(&self, from: Holder, epoch: Epoch) -> bool {
        self.holder == from && self.epoch == epoch && !self.released
    }
}

/// May `from` take a right whose record is `current`, given the stamp it
/// watched for a whole lease? The rule every store applies.
pub fn may_take(current: Option<(Holder, Stamp, bool)>, from: Holder, observed: Option<Stamp>) -> bool {
    match current {
        None => true,
        Some((_, _, true)) => true,
        Some((holder, _, _)) if holder == from => true,
        Some((_, stamp, _)) => observed == Some(stamp),
    }
}

/// The rows a store keeps, as the store's semantics ([`execute`]) reads and
/// writes them within one atomic command: `MemStore` in memory, the
/// runtime's SQLite and PostgreSQL stores in tables. An implementation only
/// stores and finds rows; every decision (fencing, deduplication, who may
/// take a right, what a write does) is [`execute`]'s.
pub trait Rows {
    type Error;
    /// The row of `key`, expired or not: value, version, expiry.
    fn kv_get(&mut self, key: &[u8]) -> Result<Option<KvRow>, Self::Error>;
    /// Writes `key` under a new version (greater than every earlier one), returned.
    fn kv_put(&mut self, key: &[u8], value: &Data, expiry: Option<Time>) -> Result<u64, Self::Error>;
    /// Deletes `key`; returns a new version, as a write does.
    fn kv_del(&mut self, key: &[u8]) -> Result<u64, Self::Error>;
    /// Up to `limit` rows of versions above `after`, expired or not, in
    /// version order: key, version, expiry, type.
    fn kv_scan(&mut self, after: u64, limit: u64) -> Result<Vec<ScanRow>, Self::Error>;
    /// How many keys are live at `now` (not expired).
    fn kv_count(&mut self, now: Time) -> Result<u64, Self::Error>;
    /// The right records of `slots`, in their order; `None` for a slot never acquired.
    fn rights(&mut self, slots: &[Slot]) -> Result<Vec<Option<RightRecord>>, Self::Error>;
    /// Gives `holder` each slot under its epoch, with no renewal yet and
    /// not released (`now`: the store's time of the grant).
    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: Holder, now: Time) -> Result<(), Self::Error>;
    /// The rights `holder` holds (not released), in slot order.
    fn rights_of(&mut self, holder: Holder) -> Result<Vec<Held>, Self::Error>;
    /// Counts a renewal of `holder` (at the store's `now`): one record,
    /// a new stamp for each right it holds that is not frozen.
    fn renew(&mut self, holder: Holder, now: Time) -> Result<(), Self::Error>;
    /// Freezes each slot's right (held by `holder`, not frozen): its stamp
    /// stays where it is now.
    fn freeze(&mut self, holder: Holder, slots: &[Slot]) -> Result<(), Self::Error>;
    /// Each slot's right (held by `holder`, frozen, after a renewal of
    /// `holder` was counted) follows its holder's count again, its stamp
    /// one past the frozen one.
    fn unfreeze(&mut self, holder: Holder, slots: &[Slot]) -> Result<(), Self::Error>;
    /// Marks each slot's right released.
    fn release(&mut self, slots: &[Slot]) -> Result<(), Self::Error>;
    /// The result recorded for an applied write.
    fn applied(&mut self, req: ReqId) -> Result<Option<OpResult>, Self::Error>;
    /// Records the result of a write applied at `now`.
    fn record(&mut self, req: ReqId, result: &OpResult, now: Time) -> Result<(), Self::Error>;
}

/// A row as SCAN reads it: key, version, expiry (store time), type.
pub type ScanRow = (Key, u64, Option<Time>, Kind);

/// A `kv` row: value, version, expiry (store time).
pub type KvRow = (Data, u64, Option<Time>);

/// What a store's semantics depends on beyond its rows: the cluster's mode
/// (a linearizable store refuses unfenced writes) and, in the model checker
/// only, a deliberate bug.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rules {
    pub mode: Mode,
    pub mutant: Option<Mutant>,
}

impl Rules {
    fn has(&self, m: Mutant) -> bool {
        self.mutant == Some(m)
    }
}

/// A key as it is at `now`: expired keys are absent.
fn live<R: Rows>(rows: &mut R, key: &[u8], now: Time) -> Result<Option<KvRow>, R::Error> {
    Ok(rows.kv_get(key)?.filter(|(_, _, exp)| exp.is_none_or(|t| now < t)))
}

/// What a reply says of a key that is `data` with `expiry` at the store's
/// `now`: its value if it is a string (none if it is of another type), and
/// how long it may be cached.
fn cacheable(data: Option<Data>, expiry: Option<Time>, now: Time) -> (Option<Value>, Keep) {
    match (data, expiry) {
        (Some(Data::Str(v)), None) => (Some(v), Keep::Ever),
        (Some(Data::Str(v)), Some(t)) => (Some(v), Keep::For(t.since(now))),
        (Some(_), _) => (None, Keep::Not),
        (None, _) => (None, Keep::Ever),
    }
}

/// What a reply says of a key: value, version (0: absent), how long it may
/// be cached. An expired key is absent at the version that expired: a
/// cache may then replace its entry of that version with the absence.
fn current<R: Rows>(rows: &mut R, key: &[u8], now: Time) -> Result<(Option<Value>, u64, Keep), R::Error> {
    Ok(match rows.kv_get(key)? {
        Some((data, ver, exp)) if exp.is_none_or(|t| now < t) => {
            let (value, keep) = cacheable(Some(data), exp, now);
            (value, ver, keep)
        }
        Some((_, ver, _)) => (None, ver, Keep::Ever),
        None => (None, 0, Keep::Ever),
    })
}

/// GET's answer: the string a key holds, none if absent, WRONGTYPE if it
/// is of another type.
fn get<R: Rows>(rows: &mut R, key: &[u8], now: Time) -> Result<OpResult, R::Error> {
    Ok(match live(rows, key, now)? {
        None => OpResult::Value(None),
        Some((Data::Str(v), ..)) => OpResult::Value(Some(v)),
        Some(_) => OpResult::Err(ErrorKind::Reply(WRONGTYPE.into())),
    })
}

fn write<R: Rows>(rows: &mut R, key: &[u8], w: Write, now: Time) -> Result<StoreReply, R::Error> {
    let old = live(rows, key, now)?.map(|(v, _, exp)| (v, exp));
    Ok(match apply_write(old, w, now) {
        Applied::Write { value, expiry, result } => {
            let version = match &value {
                Some(v) => rows.kv_put(key, v, expiry)?,
                None => rows.kv_del(key)?,
            };
            let (value, keep) = cacheable(value, expiry, now);
            StoreReply::Written { version, value, keep, result }
        }
        Applied::NotSet => {
            let (value, version, keep) = current(rows, key, now)?;
            StoreReply::Written { version, value, keep, result: OpResult::NotSet }
        }
        Applied::Rejected(e) => StoreReply::Rejected(e),
    })
}

/// Why a write of `from` under `fence` may not apply, if it may not: the
/// slot's right is not held at that epoch, or the write is unfenced in a
/// `linearizable` cluster.
fn fenced<R: Rows>(
    rows: &mut R,
    rules: Rules,
    from: Holder,
    slot: Slot,
    fence: Option<Epoch>,
) -> Result<Option<StoreReply>, R::Error> {
    Ok(match fence {
        Some(epoch) if !rules.has(Mutant::NoFencing) => {
            let right = rows.rights(&[slot])?.pop().flatten();
            (!right.is_some_and(|r| r.held_by(from, epoch))).then_some(StoreReply::Fenced)
        }
        None if rules.mode == Mode::Linearizable => Some(StoreReply::Rejected(ErrorKind::Store(UNFENCED.into()))),
        _ => None,
    })
}

/// One operation of an atomic one, over the rows as the operations before
/// it left them: the result its client sees and, for a write, what it left
/// of the keys it wrote.
fn one<R: Rows>(rows: &mut R, op: &Op, now: Time) -> Result<(OpResult, Vec<KeyAfter>), R::Error> {
    let read = |r: OpResult| Ok((r, Vec::new()));
    let w = match op.clone() {
        Op::Get(key) => return read(get(rows, &key, now)?),
        Op::Ttl(key) => {
            let row = live(rows, &key, now)?.map(|(v, _, e)| (v, e));
            return read(OpResult::Int(ttl(row.as_ref().map(|(_, e)| *e), now)));
        }
        Op::Inspect(key, what) => {
            let row = live(rows, &key, now)?;
            return read(inspect(&what, row.as_ref().map(|(v, ver, e)| (v.as_ref(), *e, *ver))));
        }
        // Checked before any part applied.
        Op::Guard(..) => return read(OpResult::Ok),
        Op::Atomic(_) => return read(OpResult::Err(ErrorKind::Reply("ERR nested atomic operation".into()))),
        Op::Db(what) => return read(db_read(rows, what, now)?),
        Op::Set(_, v) => Write::Set(v),
        Op::Del(_) => Write::Del,
        Op::Incr(_, d) => Write::Incr(d),
        Op::SetWith(_, v, o) => Write::SetWith(v, o),
        Op::Expire(_, ms) => Write::Expire(ms),
        Op::Update(_, u) => Write::Update(u),
        Op::Keys(w) => return keys_write(rows, w, now),
    };
    Ok(match write(rows, op.key(), w, now)? {
        StoreReply::Written { result, version, value, keep } => {
            (result, vec![KeyAfter { key: op.key().to_vec(), value, version, keep }])
        }
        StoreReply::Rejected(e) => (OpResult::Err(e), Vec::new()),
        _ => (OpResult::Err(ErrorKind::Reply("ERR unexpected store reply".into())), Vec::new()),
    })
}

/// Writes `data` (none: deletes) with `expiry` to `key`: what it leaves of
/// the key, for the caches.
fn put<R: Rows>(
    rows: &mut R,
    key: &[u8],
    data: Option<Data>,
    expiry: Option<Time>,
    now: Time,
) -> Result<KeyAfter, R::Error> {
    let version = match &data {
        Some(d) => rows.kv_put(key, d, expiry)?,
        None => rows.kv_del(key)?,
    };
    let (value, keep) = cacheable(data, expiry, now);
    Ok(KeyAfter { key: key.to_vec(), value, version, keep })
}

/// MSETNX, RENAME, COPY, as Redis 7 applies them.
fn keys_write<R: Rows>(rows: &mut R, w: KeysWrite, now: Time) -> Result<(OpResult, Vec<KeyAfter>), R::Error> {
    let mut after = Vec::new();
    let result = match w {
        KeysWrite::SetIfNone(pairs) => {
            for (key, _) in &pairs {
                if live(rows, key, now)?.is_some() {
                    return Ok((OpResult::Int(0), after));
                }
            }
            for (key, value) in pairs {
                after.retain(|k: &KeyAfter| k.key != key);
                after.push(put(rows, &key, Some(Data::Str(value)), None, now)?);
            }
            OpResult::Int(1)
        }
        KeysWrite::Move { from, to, copy, replace } => {
            let Some((data, _, expiry)) = live(rows, &from, now)? else {
                let none = if copy { OpResult::Int(0) } else { OpResult::Err(ErrorKind::Reply(NO_SUCH_KEY.into())) };
                return Ok((none, after));
            };
            // RENAME of a key to itself: nothing moves.
            let done = if replace && !copy { OpResult::Ok } else { OpResult::Int(1) };
            if from == to {
                let same = if replace && !copy { OpResult::Ok } else { OpResult::Int(0) };
                return Ok((same, after));
            }
            if !replace && live(rows, &to, now)?.is_some() {
                return Ok((OpResult::Int(0), after));
            }
            after.push(put(rows, &to, Some(data), expiry, now)?);
            if !copy {
                after.push(put(rows, &from, None, None, now)?);
            }
            done
        }
    };
    Ok((result, after))
}

/// RENAME's error for a source that does not exist.
pub const NO_SUCH_KEY: &str = "ERR no such key";

/// A read of the whole database (SCAN, KEYS, DBSIZE) at the store's `now`.
fn db_read<R: Rows>(rows: &mut R, what: DbRead, now: Time) -> Result<OpResult, R::Error> {
    Ok(match what {
        DbRead::Size => OpResult::Int(rows.kv_count(now)? as i64),
        DbRead::InSlot { slot, count, count_only } => {
            let mut keys: Vec<Key> = rows
                .kv_scan(0, u64::MAX)?
                .into_iter()
                .filter(|(key, _, exp, _)| {
                    exp.is_none_or(|t| now < t) && crate::topology::key_slot(key, crate::topology::SLOTS).0 == slot
                })
                .map(|(key, ..)| key)
                .collect();
            if count_only {
                OpResult::Int(keys.len() as i64)
            } else {
                keys.truncate(count.min(usize::MAX as u64) as usize);
                OpResult::Keys { keys, next: 0 }
            }
        }
        DbRead::Scan { after, count, pattern, type_name } => {
            let found = rows.kv_scan(after, count.max(1))?;
            // A full page may have more after it: go on from its last version.
            let next = if found.len() as u64 >= count.max(1) { found.last().map_or(0, |r| r.1) } else { 0 };
            let keys = found
                .into_iter()
                .filter(|(key, _, exp, kind)| {
                    type_name.as_ref().is_none_or(|t| t.eq_ignore_ascii_case(kind.name()))
                        && exp.is_none_or(|t| now < t)
                        && pattern.as_ref().is_none_or(|p| crate::glob::matches(p, key, false))
                })
                .map(|(key, ..)| key)
                .collect();
            OpResult::Keys { keys, next }
        }
    })
}

/// PTTL of a key: `None` absent, else its expiry.
fn ttl(expiry: Option<Option<Time>>, now: Time) -> i64 {
    match expiry {
        None => -2,
        Some(None) => -1,
        Some(Some(t)) => t.since(now) as i64,
    }
}

/// Whether `guard` holds of `key` at `now`.
fn guard_holds<R: Rows>(rows: &mut R, key: &[u8], guard: &Guard, now: Time) -> Result<bool, R::Error> {
    let version = live(rows, key, now)?.map_or(0, |(_, ver, _)| ver);
    Ok(match guard {
        Guard::Version(v) => version == *v,
    })
}

/// The answer to `what` of a key that is `row` (value, expiry, version;
/// `None`: absent or expired): the one function the store and the caches
/// answer with.
pub fn inspect(what: &Inspect, row: Option<(DataRef<'_>, Option<Time>, u64)>) -> OpResult {
    let wrong = || OpResult::Err(ErrorKind::Reply(WRONGTYPE.into()));
    let row = match (what, row) {
        (Inspect::Version, row) => return OpResult::Int(row.map_or(0, |(.., ver)| ver as i64)),
        (_, row) => row.map(|(v, e, _)| (v, e)),
    };
    match (what, row) {
        (Inspect::Version, _) => OpResult::Int(0),
        (Inspect::Exists, row) => OpResult::Int(row.is_some() as i64),
        (Inspect::Type, None) => OpResult::Status("none".into()),
        (Inspect::Type, Some((DataRef::Str(_), _))) => OpResult::Status(Kind::String.name().into()),
        (Inspect::Type, Some((DataRef::Hash(_), _))) => OpResult::Status(Kind::Hash.name().into()),
        (Inspect::ExpireTime { .. }, None) => OpResult::Int(-2),
        (Inspect::ExpireTime { .. }, Some((_, None))) => OpResult::Int(-1),
        (Inspect::ExpireTime { ms }, Some((_, Some(t)))) => {
            OpResult::Int(if *ms { t.0 as i64 } else { (t.0 as i64 + 500) / 1000 })
        }
        (Inspect::Strlen | Inspect::GetRange(..), Some((DataRef::Hash(_), _))) => wrong(),
        (Inspect::Hash(_), Some((DataRef::Str(_), _))) => wrong(),
        (Inspect::Strlen, row) => OpResult::Int(row.map_or(0, |(v, _)| str_of(v).len() as i64)),
        (Inspect::GetRange(start, end), row) => {
            let v = row.map_or(&[][..], |(v, _)| str_of(v));
            OpResult::Value(Some(range(v, *start, *end).to_vec()))
        }
        (Inspect::Hash(read), row) => {
            let fields = match row {
                Some((DataRef::Hash(h), _)) => h,
                _ => &[],
            };
            hash_read(read, fields)
        }
    }
}

/// The string of a value known to be one (else empty).
fn str_of(v: DataRef<'_>) -> &[u8] {
    match v {
        DataRef::Str(s) => s,
        DataRef::Hash(_) => &[],
    }
}

/// A read of a hash whose fields are `fields` (none: an absent key).
fn hash_read(read: &HashRead, fields: &[(Value, Value)]) -> OpResult {
    let find = |f: &[u8]| fields.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
    match read {
        HashRead::Get(f) => OpResult::Value(find(f)),
        HashRead::MGet(fs) => OpResult::Values(fs.iter().map(|f| find(f)).collect()),
        HashRead::GetAll => OpResult::Pairs(fields.to_vec()),
        HashRead::Keys => OpResult::Values(fields.iter().map(|(k, _)| Some(k.clone())).collect()),
        HashRead::Vals => OpResult::Values(fields.iter().map(|(_, v)| Some(v.clone())).collect()),
        HashRead::Len => OpResult::Int(fields.len() as i64),
        HashRead::Exists(f) => OpResult::Int(find(f).is_some() as i64),
        HashRead::StrLen(f) => OpResult::Int(find(f).map_or(0, |v| v.len() as i64)),
        HashRead::Scan(pattern) => OpResult::Pairs(
            fields
                .iter()
                .filter(|(k, _)| pattern.as_ref().is_none_or(|p| crate::glob::matches(p, k, false)))
                .cloned()
                .collect(),
        ),
    }
}

/// GETRANGE's substring, as Redis computes it.
fn range(v: &[u8], start: i64, end: i64) -> &[u8] {
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return &[];
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end };
    let end = end.min(len - 1);
    if start > end || len == 0 {
        return &[];
    }
    &v[start as usize..=end as usize]
}

/// Whether `from` may take a right whose record is `record` (see
/// [`may_take`]), or a mutant says so.
fn grants(
    rules: Rules,
    record: Option<&RightRecord>,
    from: Holder,
    observed: Option<Stamp>,
    lease: u64,
    now: Time,
) -> bool {
    if may_take(record.map(|r| (r.holder, r.stamp(), r.released)), from, observed) {
        return true;
    }
    let Some(r) = record else { return true };
    match rules.mutant {
        Some(Mutant::EarlyTakeover) => true,
        // The old design: the lease runs out on the store's clock.
        Some(Mutant::StoreClockLeases) => now >= r.renewed_at.plus(lease),
        Some(Mutant::SameNameTakesOver) => r.holder.server == from.server,
        _ => false,
    }
}

/// The store's semantics: carries out one command of `from` atomically
/// over `rows` at the store's time `now` (used for keys' time to live
/// only). Every store runs this one function: `MemStore` in the model
/// checker and the tests, the SQLite and PostgreSQL stores in the binaries.
pub fn execute<R: Rows>(
    rows: &mut R,
    rules: Rules,
    from: Holder,
    op: StoreOp,
    now: Time,
) -> Result<StoreReply, R::Error> {
    Ok(match op {
        StoreOp::Read { key } => match live(rows, &key, now)? {
            Some((Data::Hash(_), ..)) => StoreReply::Rejected(ErrorKind::Reply(WRONGTYPE.into())),
            _ => {
                let (value, version, keep) = current(rows, &key, now)?;
                StoreReply::Read { value, version, keep }
            }
        },
        StoreOp::Ttl { key } => StoreReply::Ttl(ttl(live(rows, &key, now)?.map(|(_, _, e)| e), now)),
        StoreOp::Db(what) => StoreReply::Inspected(db_read(rows, what, now)?),
        StoreOp::Inspect { key, what } => {
            let row = live(rows, &key, now)?;
            StoreReply::Inspected(inspect(&what, row.as_ref().map(|(v, ver, e)| (v.as_ref(), *e, *ver))))
        }
        StoreOp::Atomic { slot, fence, req, ops } => {
            // What the caches get of each key: as a write of this operation
            // left it (with that write's version), or as it is now.
            let mut after: Vec<KeyAfter> = Vec::new();
            let now_of = |rows: &mut R, key: &[u8], after: &mut Vec<KeyAfter>| -> Result<(), R::Error> {
                if !after.iter().any(|k| k.key == key) {
                    let (value, version, keep) = current(rows, key, now)?;
                    after.push(KeyAfter { key: key.to_vec(), value, version, keep });
                }
                Ok(())
            };
            let writes = ops.iter().any(Op::is_write);
            if writes {
                let dedupe = !rules.has(Mutant::TransactionsTwice);
                if let Some(result) = rows.applied(req)?.filter(|_| dedupe) {
                    for key in ops.iter().flat_map(Op::keys) {
                        now_of(rows, key, &mut after)?;
                    }
                    return Ok(StoreReply::Atomic { result, keys: after });
                }
                if let Some(refused) = fenced(rows, rules, from, slot, fence)? {
                    return Ok(refused);
                }
            }
            let mut held = true;
            for op in &ops {
                if let Op::Guard(key, guard) = op {
                    held &= guard_holds(rows, key, guard, now)?;
                }
            }
            if !held {
                if writes {
                    rows.record(req, &OpResult::Aborted, now)?;
                }
                for key in ops.iter().flat_map(Op::keys) {
                    now_of(rows, key, &mut after)?;
                }
                return Ok(StoreReply::Atomic { result: OpResult::Aborted, keys: after });
            }
            let mut results = Vec::with_capacity(ops.len());
            let mut written: Vec<KeyAfter> = Vec::new();
            for op in &ops {
                let (result, left) = one(rows, op, now)?;
                for k in left {
                    written.retain(|w| w.key != k.key);
                    written.push(k);
                }
                results.push(result);
            }
            let result = OpResult::Many(results);
            if writes {
                rows.record(req, &result, now)?;
            }
            after = written;
            for key in ops.iter().flat_map(Op::keys) {
                now_of(rows, key, &mut after)?;
            }
            StoreReply::Atomic { result, keys: after }
        }
        StoreOp::Write { slot, fence, req, key, write: w } => {
            // A duplicate or a retry: applied at most once. The client gets
            // the same answer, but a cache must get the key as it is now:
            // later writes may have followed this one.
            match rows.applied(req)? {
                Some(OpResult::Err(e)) => return Ok(StoreReply::Rejected(e)),
                Some(result) => {
                    let (value, version, keep) = current(rows, &key, now)?;
                    return Ok(StoreReply::Written { version, value, keep, result });
                }
                None => {}
            }
            if let Some(refused) = fenced(rows, rules, from, slot, fence)? {
                return Ok(refused);
            }
            let reply = write(rows, &key, w, now)?;
            // Record the answer for retries (a rejection as an error).
            match &reply {
                StoreReply::Written { result, .. } => rows.record(req, result, now)?,
                StoreReply::Rejected(e) => rows.record(req, &OpResult::Err(e.clone()), now)?,
                _ => {}
            }
            reply
        }
        StoreOp::Acquire { slots, lease } => {
            let (mut granted, mut held) = (Vec::new(), Vec::new());
            let ids: Vec<Slot> = slots.iter().map(|(s, _)| *s).collect();
            let records = rows.rights(&ids)?;
            for ((slot, observed), record) in slots.into_iter().zip(records) {
                match record {
                    Some(r) if !grants(rules, Some(&r), from, observed, lease, now) => {
                        held.push((slot, r.holder.server, r.stamp()))
                    }
                    // Always a new epoch, even for the holder itself, so
                    // writes it sent under the old one are fenced.
                    r => granted.push((slot, Epoch(r.map_or(0, |r| r.epoch.0) + 1))),
                }
            }
            if !granted.is_empty() {
                rows.set_rights(&granted, from, now)?;
            }
            StoreReply::Acquired { granted, held }
        }
        StoreOp::Renew { mut rights, lease: _ } => {
            // Read this holder's rights once: those asked for are renewed
            // (one count for all), the others' stamps stop where they are.
            // Merges of sorted lists, no sets: a server holds thousands of
            // rights, renews every third of a lease, and what a renewal
            // allocates counts against `maxmemory` while it runs.
            let mine = rows.rights_of(from)?;
            if !rights.is_sorted() {
                rights.sort_unstable();
            }
            rights.dedup();
            let (mut lost, mut i) = (Vec::new(), 0);
            rights.retain(|&(slot, epoch)| {
                while mine.get(i).is_some_and(|h| h.slot < slot) {
                    i += 1;
                }
                let held = mine.get(i).is_some_and(|h| h.slot == slot && h.epoch == epoch);
                if !held {
                    lost.push((slot, epoch));
                }
                held
            });
            let kept = rights;
            let (mut stop, mut resume, mut j) = (Vec::new(), Vec::new(), 0);
            for h in &mine {
                while kept.get(j).is_some_and(|k| k.0 < h.slot) {
                    j += 1;
                }
                match (h.frozen, kept.get(j) == Some(&(h.slot, h.epoch))) {
                    (false, false) => stop.push(h.slot),
                    (true, true) => resume.push(h.slot),
                    _ => {}
                }
            }
            if !stop.is_empty() {
                rows.freeze(from, &stop)?;
            }
            if !kept.is_empty() {
                rows.renew(from, now)?;
            }
            if !resume.is_empty() {
                rows.unfreeze(from, &resume)?;
            }
            StoreReply::Renewed { kept, lost }
        }
        StoreOp::Release { rights } => {
            let slots: Vec<Slot> = rights.iter().map(|(s, _)| *s).collect();
            let records = rows.rights(&slots)?;
            let mut mine: Vec<(Slot, bool)> = rights
                .iter()
                .zip(records)
                .filter_map(|((s, epoch), r)| r.filter(|r| r.held_by(from, *epoch)).map(|r| (*s, r.frozen)))
                .collect();
            // Each once: freezing is not idempotent.
            mine.sort_unstable();
            mine.dedup();
            // Frozen too: a released right's stamp stays as it was.
            let moving: Vec<Slot> = mine.iter().filter(|(_, frozen)| !frozen).map(|(s, _)| *s).collect();
            if !moving.is_empty() {
                rows.freeze(from, &moving)?;
            }
            if !mine.is_empty() {
                rows.release(&mine.iter().map(|(s, _)| *s).collect::<Vec<_>>())?;
            }
            StoreReply::Released
        }
    })
}

/// A linearizable in-memory store: each `execute` is one atomic step of
/// [`execute`] over rows in persistent maps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemStore {
    /// Value, version and expiry (store time) of each key.
    pub data: OrdMap<Key, KvRow>,
    /// Rights as recorded: `renewals` is, for a right not frozen, its
    /// holder's count at the grant (the stamp counts from it), and
    /// `renewed_at` counts only for a frozen one.
    pub rights: OrdMap<Slot, RightRecord>,
    /// Each holder's renewals and (for the `StoreClockLeases` mutant only)
    /// the store's time of its last one.
    pub holders: OrdMap<Holder, (u64, Time)>,
    /// Results of applied writes, so a duplicate gets the same answer.
    pub applied: OrdMap<ReqId, OpResult>,
    pub last_version: u64,
    pub rules: Rules,
}

impl MemStore {
    pub fn new(mode: Mode, mutant: Option<Mutant>) -> MemStore {
        MemStore { rules: Rules { mode, mutant }, ..MemStore::default() }
    }
}

impl Rows for MemStore {
    type Error = std::convert::Infallible;

    fn kv_get(&mut self, key: &[u8]) -> Result<Option<KvRow>, Self::Error> {
        Ok(self.data.get(key).cloned())
    }

    fn kv_put(&mut self, key: &[u8], value: &Data, expiry: Option<Time>) -> Result<u64, Self::Error> {
        self.last_version += 1;
        self.data.insert(key.to_vec(), (value.clone(), self.last_version, expiry));
        Ok(self.last_version)
    }

    fn kv_del(&mut self, key: &[u8]) -> Result<u64, Self::Error> {
        self.last_version += 1;
        self.data.remove(key);
        Ok(self.last_version)
    }

    fn kv_scan(&mut self, after: u64, limit: u64) -> Result<Vec<ScanRow>, Self::Error> {
        let mut rows: Vec<ScanRow> =
            self.data.iter().filter(|(_, r)| r.1 > after).map(|(k, r)| (k.clone(), r.1, r.2, r.0.kind())).collect();
        rows.sort_by_key(|r| r.1);
        rows.truncate(limit.min(usize::MAX as u64) as usize);
        Ok(rows)
    }

    fn kv_count(&mut self, now: Time) -> Result<u64, Self::Error> {
        Ok(self.data.values().filter(|r| r.2.is_none_or(|t| now < t)).count() as u64)
    }

    fn rights(&mut self, slots: &[Slot]) -> Result<Vec<Option<RightRecord>>, Self::Error> {
        Ok(slots
            .iter()
            .map(|s| {
                self.rights.get(s).map(|r| match (r.frozen, self.holders.get(&r.holder)) {
                    (false, Some(&(count, renewed_at))) => {
                        RightRecord { renewals: count - r.renewals, renewed_at, ..r.clone() }
                    }
                    (false, None) => RightRecord { renewals: 0, ..r.clone() },
                    (true, _) => r.clone(),
                })
            })
            .collect())
    }

    fn set_rights(&mut self, rights: &[(Slot, Epoch)], holder: Holder, now: Time) -> Result<(), Self::Error> {
        let count = self.count(holder);
        // A grant counts as a renewal for the mutant that times leases on
        // the store's clock.
        if self.rules.has(Mutant::StoreClockLeases) {
            self.holders.insert(holder, (count, now));
        }
        let mut before = Vec::new();
        for &(slot, epoch) in rights {
            let record =
                RightRecord { holder, epoch, renewals: count, released: false, frozen: false, renewed_at: Time::ZERO };
            if let Some(old) = self.rights.insert(slot, record) {
                before.push(old.holder);
            }
        }
        // A holder no right names any more is forgotten (the runtime's
        // stores prune such rows later; stamps count from the grant, so
        // both give the same stamps).
        for old in before {
            if !self.rights.values().any(|r| r.holder == old) {
                self.holders.remove(&old);
            }
        }
        Ok(())
    }

    fn rights_of(&mut self, holder: Holder) -> Result<Vec<Held>, Self::Error> {
        Ok(self
            .rights
            .iter()
            .filter(|(_, r)| r.holder == holder && !r.released)
            .map(|(s, r)| Held { slot: *s, epoch: r.epoch, frozen: r.frozen })
            .collect())
    }

    fn renew(&mut self, holder: Holder, now: Time) -> Result<(), Self::Error> {
        let renewed_at = self.renewal_time(now);
        let count = self.count(holder);
        self.holders.insert(holder, (count + 1, renewed_at));
        Ok(())
    }

    fn freeze(&mut self, holder: Holder, slots: &[Slot]) -> Result<(), Self::Error> {
        let (count, renewed_at) = self.holders.get(&holder).copied().unwrap_or((0, Time::ZERO));
        for slot in slots {
            if let Some(r) = self.rights.get_mut(slot) {
                *r = RightRecord { renewals: count - r.renewals, renewed_at, frozen: true, ..r.clone() };
            }
        }
        Ok(())
    }

    fn unfreeze(&mut self, holder: Holder, slots: &[Slot]) -> Result<(), Self::Error> {
        let count = self.count(holder);
        for slot in slots {
            if let Some(r) = self.rights.get_mut(slot) {
                let base = count - (r.renewals + 1);
                *r = RightRecord { renewals: base, renewed_at: Time::ZERO, frozen: false, ..r.clone() };
            }
        }
        Ok(())
    }

    fn release(&mut self, slots: &[Slot]) -> Result<(), Self::Error> {
        for slot in slots {
            if let Some(r) = self.rights.get_mut(slot) {
                r.released = true;
            }
        }
        Ok(())
    }

    fn applied(&mut self, req: ReqId) -> Result<Option<OpResult>, Self::Error> {
        Ok(self.applied.get(&req).cloned())
    }

    fn record(&mut self, req: ReqId, result: &OpResult, _now: Time) -> Result<(), Self::Error> {
        self.applied.insert(req, result.clone());
        Ok(())
    }
}

impl MemStore {
    /// The time a record keeps of its last grant or renewal: only the
    /// `StoreClockLeases` mutant reads it, and a time in every record would
    /// multiply the checker's states.
    fn count(&self, holder: Holder) -> u64 {
        self.holders.get(&holder).map_or(0, |h| h.0)
    }

    fn renewal_time(&self, now: Time) -> Time {
        if self.rules.has(Mutant::StoreClockLeases) {
            now
        } else {
            Time::ZERO
        }
    }
}

fn as_int(v: Option<&[u8]>) -> Option<i64> {
    match v {
        None => Some(0),
        Some(v) => std::str::from_utf8(v).ok()?.parse().ok(),
    }
}

/// What a write makes of a key, whatever the store: every store
/// implementation applies writes through this one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The key's new value (`None`: deleted) and expiry, and the result.
    Write { value: Option<Data>, expiry: Option<Time>, result: OpResult },
    /// An NX/XX condition did not hold: nothing changes.
    NotSet,
    /// Not applied: INCR of a non-integer, or an overflow.
    Rejected(ErrorKind),
}

/// Applies `write` to a key that is `old` (its value and expiry; `None`:
/// absent or expired) at the store's `now`.
pub fn apply_write(old: Option<(Data, Option<Time>)>, write: Write, now: Time) -> Applied {
    let exists = old.is_some();
    let (old_value, old_expiry) = match old {
        Some((v, e)) => (Some(v), e),
        None => (None, None),
    };
    let (value, expiry, result) = match write {
        Write::Set(v) => (Some(Data::Str(v)), None, OpResult::Ok),
        Write::SetWith(v, opts) => {
            let applies = match opts.cond {
                SetCond::Always => true,
                SetCond::IfAbsent => !exists,
                SetCond::IfPresent => exists,
            };
            if !applies {
                return Applied::NotSet;
            }
            (Some(Data::Str(v)), opts.ttl_ms.map(|ms| now.plus(ms)), OpResult::Ok)
        }
        Write::Del => (None, None, OpResult::Deleted(exists as u8)),
        Write::Incr(d) => match string(old_value).map(|v| as_int(v.as_deref()).map(|n| n.checked_add(d))) {
            Err(wrong) => return wrong,
            Ok(Some(Some(n))) => (Some(Data::Str(n.to_string().into_bytes())), old_expiry, OpResult::Int(n)),
            Ok(Some(None)) => return Applied::Rejected(ErrorKind::Reply(OVERFLOW.into())),
            Ok(None) => return Applied::Rejected(ErrorKind::NotInteger),
        },
        Write::Expire(_) if !exists => (None, None, OpResult::Int(0)),
        Write::Expire(ms) if ms <= 0 => (None, None, OpResult::Int(1)),
        Write::Expire(ms) => (old_value, Some(now.plus(ms as u64)), OpResult::Int(1)),
        Write::Update(Update::Hash(h)) => return hash_write(old_value, old_expiry, h),
        Write::Update(u) => return update(old_value, old_expiry, u, now),
    };
    Applied::Write { value, expiry, result }
}

fn wrong_type() -> Applied {
    Applied::Rejected(ErrorKind::Reply(WRONGTYPE.into()))
}

/// The string a key holds (none if absent), or WRONGTYPE's rejection.
fn string(d: Option<Data>) -> Result<Option<Value>, Applied> {
    match d {
        None => Ok(None),
        Some(Data::Str(v)) => Ok(Some(v)),
        Some(_) => Err(wrong_type()),
    }
}

/// A [`HashWrite`] of a key whose value and expiry are `old`, as Redis 7
/// applies it: a new hash has no time to live, a changed one keeps its.
fn hash_write(old: Option<Data>, old_expiry: Option<Time>, h: HashWrite) -> Applied {
    let mut fields = match old {
        None => Vec::new(),
        Some(Data::Hash(f)) => f,
        Some(_) => return wrong_type(),
    };
    let existed = !fields.is_empty();
    let at = |fields: &[(Value, Value)], f: &[u8]| fields.iter().position(|(k, _)| k == f);
    let put = |fields: &mut Vec<(Value, Value)>, f: Value, v: Value| match at(fields, &f) {
        Some(i) => {
            fields[i].1 = v;
            0
        }
        None => {
            fields.push((f, v));
            1
        }
    };
    let result = match h {
        HashWrite::Set(pairs) => OpResult::Int(pairs.into_iter().map(|(f, v)| put(&mut fields, f, v)).sum()),
        HashWrite::SetNx(f, v) => OpResult::Int(if at(&fields, &f).is_some() { 0 } else { put(&mut fields, f, v) }),
        HashWrite::Del(fs) => {
            let before = fields.len();
            fields.retain(|(k, _)| !fs.contains(k));
            OpResult::Int((before - fields.len()) as i64)
        }
        HashWrite::IncrBy(f, by) => {
            let old = at(&fields, &f).map(|i| &fields[i].1[..]);
            let Some(n) = as_int(old) else {
                return Applied::Rejected(ErrorKind::Reply("ERR hash value is not an integer".into()));
            };
            let Some(n) = n.checked_add(by) else { return Applied::Rejected(ErrorKind::Reply(OVERFLOW.into())) };
            put(&mut fields, f, n.to_string().into_bytes());
            OpResult::Int(n)
        }
        HashWrite::IncrByFloat(f, by) => {
            let by = parse_float(&by).unwrap_or(f64::NAN);
            let base = match at(&fields, &f) {
                None => 0.0,
                Some(i) => match parse_float(&fields[i].1) {
                    Some(b) => b,
                    None => return Applied::Rejected(ErrorKind::Reply("ERR hash value is not a float".into())),
                },
            };
            let sum = base + by;
            if !sum.is_finite() {
                return Applied::Rejected(ErrorKind::Reply("ERR increment would produce NaN or Infinity".into()));
            }
            let text = format_float(sum).into_bytes();
            put(&mut fields, f, text.clone());
            OpResult::Value(Some(text))
        }
    };
    let expiry = if existed { old_expiry } else { None };
    let value = (!fields.is_empty()).then_some(Data::Hash(fields));
    Applied::Write { value, expiry, result }
}

/// INCRBY's error where the sum leaves 64 bits.
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// Redis's largest string (`proto-max-bulk-len`).
pub const MAX_STRING: u64 = 512 * 1024 * 1024;

/// The store time of a deadline; `None` if it has passed at `now` (the
/// key expires at once).
fn deadline(d: Deadline, now: Time) -> Option<Time> {
    let at = match d {
        Deadline::In(ms) => (now.0 as i64).saturating_add(ms),
        Deadline::At(at) => at,
    };
    (at > now.0 as i64).then_some(Time(at as u64))
}

/// An [`Update`] of a key whose value and expiry are `old` (`None`:
/// absent), as Redis 7 applies it.
fn update(data: Option<Data>, old_expiry: Option<Time>, u: Update, now: Time) -> Applied {
    let exists = data.is_some();
    let keep = |result| Applied::Write { value: data.clone(), expiry: old_expiry, result };
    let old = match string(data.clone()) {
        Ok(old) => old,
        Err(wrong) if u.needs_string() => return wrong,
        Err(_) => None,
    };
    let str = |v: Value| Some(Data::Str(v));
    match u {
        Update::Set { value, cond, expiry, keep_ttl, get } => {
            let applies = match cond {
                SetCond::Always => true,
                SetCond::IfAbsent => !exists,
                SetCond::IfPresent => exists,
            };
            let result = if get { OpResult::Value(old.clone()) } else { OpResult::Ok };
            if !applies {
                return if get { keep(result) } else { Applied::NotSet };
            }
            match expiry.map(|d| deadline(d, now)) {
                // A deadline already past: the key is gone at once.
                Some(None) => Applied::Write { value: None, expiry: None, result },
                Some(Some(t)) => Applied::Write { value: str(value), expiry: Some(t), result },
                None if keep_ttl => Applied::Write { value: str(value), expiry: old_expiry, result },
                None => Applied::Write { value: str(value), expiry: None, result },
            }
        }
        Update::GetDel => Applied::Write { value: None, expiry: None, result: OpResult::Value(old) },
        Update::GetEx(change) => {
            let result = OpResult::Value(old.clone());
            match change {
                _ if !exists => keep(result),
                None => keep(result),
                Some(None) => Applied::Write { value: data, expiry: None, result },
                Some(Some(d)) => match deadline(d, now) {
                    None => Applied::Write { value: None, expiry: None, result },
                    Some(t) => Applied::Write { value: data, expiry: Some(t), result },
                },
            }
        }
        Update::Append(tail) => {
            let mut v = old.clone().unwrap_or_default();
            if v.len() as u64 + tail.len() as u64 > MAX_STRING {
                return Applied::Rejected(too_big());
            }
            v.extend_from_slice(&tail);
            let len = v.len() as i64;
            Applied::Write { value: str(v), expiry: old_expiry, result: OpResult::Int(len) }
        }
        Update::SetRange(offset, part) => {
            let mut v = old.clone().unwrap_or_default();
            if part.is_empty() {
                // Nothing to write: an absent key stays absent.
                return keep(OpResult::Int(v.len() as i64));
            }
            if offset + part.len() as u64 > MAX_STRING {
                return Applied::Rejected(too_big());
            }
            let end = offset as usize + part.len();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset as usize..end].copy_from_slice(&part);
            let len = v.len() as i64;
            Applied::Write { value: str(v), expiry: old_expiry, result: OpResult::Int(len) }
        }
        Update::IncrFloat(by) => {
            let not_float = || Applied::Rejected(ErrorKind::Reply("ERR value is not a valid float".into()));
            let Some(by) = parse_float(&by) else { return not_float() };
            let base = match &old {
                None => 0.0,
                Some(v) => match parse_float(v) {
                    Some(f) => f,
                    None => return not_float(),
                },
            };
            let sum = base + by;
            if !sum.is_finite() {
                return Applied::Rejected(ErrorKind::Reply("ERR increment would produce NaN or Infinity".into()));
            }
            let text = format_float(sum).into_bytes();
            Applied::Write { value: str(text.clone()), expiry: old_expiry, result: OpResult::Value(Some(text)) }
        }
        Update::Persist => match old_expiry {
            Some(_) if exists => Applied::Write { value: data, expiry: None, result: OpResult::Int(1) },
            _ => keep(OpResult::Int(0)),
        },
        // A hash's writes are `hash_write`'s.
        Update::Hash(_) => wrong_type(),
        Update::Expire(d, cond) => {
            if !exists {
                return keep(OpResult::Int(0));
            }
            let when = match d {
                Deadline::In(ms) => (now.0 as i64).saturating_add(ms),
                Deadline::At(at) => at,
            };
            let current = old_expiry.map(|t| t.0 as i64);
            let holds = match cond {
                ExpireCond::Always => true,
                ExpireCond::NoTtl => current.is_none(),
                ExpireCond::HasTtl => current.is_some(),
                // No time to live counts as infinite.
                ExpireCond::Later => current.is_some_and(|c| when > c),
                ExpireCond::Earlier => current.is_none_or(|c| when < c),
            };
            if !holds {
                return keep(OpResult::Int(0));
            }
            match deadline(Deadline::At(when), now) {
                None => Applied::Write { value: None, expiry: None, result: OpResult::Int(1) },
                Some(t) => Applied::Write { value: data, expiry: Some(t), result: OpResult::Int(1) },
            }
        }
    }
}

fn too_big() -> ErrorKind {
    ErrorKind::Reply("ERR string exceeds maximum allowed size (proto-max-bulk-len)".into())
}

/// A float as Redis reads one for INCRBYFLOAT: no spaces, no NaN.
pub fn parse_float(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?;
    if s.is_empty() || s.starts_with(|c: char| c.is_whitespace()) || s.ends_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    (!f.is_nan()).then_some(f)
}

/// A float as INCRBYFLOAT writes it: plain decimal, no exponent, no
/// trailing zeros.
pub fn format_float(f: f64) -> String {
    let s = format!("{f}");
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

impl Store for MemStore {
    fn execute(&mut self, from: Holder, op: StoreOp, now: Time) -> StoreReply {
        let rules = self.rules;
        match execute(self, rules, from, op, now) {
            Ok(reply) => reply,
            Err(never) => match never {},
        }
    }
}
