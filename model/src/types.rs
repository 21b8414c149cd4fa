//! Identifiers, time and the client-visible operations.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds on a node's own monotonic clock. The core never reads a
/// clock: the runtime (or the model checker) passes `now` in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Time(pub u64);

impl Time {
    pub const ZERO: Time = Time(0);
    /// Later than any time a clock shows.
    pub const NEVER: Time = Time(u64::MAX);

    /// `self + ms`, saturating.
    pub fn plus(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A cache server, by its index in the topology.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerId(pub u16);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// One of the 16384 (or fewer, for small models) slots of the keyspace:
/// the "request type" of the claims (c1, c2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot(pub u16);

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {}", self.0)
    }
}

/// A client session (a library client, or one RESP connection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// A request's identity, carried end to end so that the store applies a
/// retried or duplicated write at most once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReqId {
    pub client: ClientId,
    pub seq: u64,
}

/// Fencing epoch of a slot's serving right; the store rejects writes that
/// carry an older one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Epoch(pub u64);

/// Version of a master notice: the master's incarnation, then a counter.
/// A receiver applies a notice only if it is newer than what it holds, so a
/// late or reordered notice never undoes a newer one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    pub incarnation: u64,
    pub counter: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.incarnation, self.counter)
    }
}

pub type Key = Vec<u8>;
pub type Value = Vec<u8>;

/// A key's value as the store keeps it: a string, or a hash (its fields in
/// the order they were first set, as Redis lists a small hash's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Data {
    Str(Value),
    Hash(Vec<(Value, Value)>),
}

/// A key's value seen in place: the store's row or a cached string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataRef<'a> {
    Str(&'a [u8]),
    Hash(&'a [(Value, Value)]),
}

/// The types of values a key can hold, as TYPE names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    String,
    Hash,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
        }
    }
}

impl Data {
    pub fn kind(&self) -> Kind {
        match self {
            Data::Str(_) => Kind::String,
            Data::Hash(_) => Kind::Hash,
        }
    }

    pub fn as_ref(&self) -> DataRef<'_> {
        match self {
            Data::Str(v) => DataRef::Str(v),
            Data::Hash(h) => DataRef::Hash(h),
        }
    }
}

/// Redis's error for a command of one type on a key of another.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// A write to a hash's fields. A hash whose last field goes is deleted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HashWrite {
    /// HSET, HMSET: the number of fields added.
    Set(Vec<(Value, Value)>),
    /// HSETNX: 1 if the field was added, 0 if it was there.
    SetNx(Value, Value),
    /// HDEL: the number of fields removed.
    Del(Vec<Value>),
    /// HINCRBY: the new value.
    IncrBy(Value, i64),
    /// HINCRBYFLOAT by the increment as written (checked finite by the
    /// command's parser, as Redis checks it before the key's type).
    IncrByFloat(Value, Value),
}

/// A read of a hash's fields; an absent key is an empty hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HashRead {
    Get(Value),
    MGet(Vec<Value>),
    /// HGETALL: fields and values.
    GetAll,
    Keys,
    Vals,
    Len,
    Exists(Value),
    StrLen(Value),
    /// HSCAN: every field matching the pattern, with its value, in one
    /// page (as Redis answers for a small hash).
    Scan(Option<Value>),
}

/// Who sent a report to the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Node {
    Server(ServerId),
    Client(ClientId),
}

/// When a conditional SET applies (NX, XX).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SetCond {
    #[default]
    Always,
    /// NX: only if the key does not exist.
    IfAbsent,
    /// XX: only if the key exists.
    IfPresent,
}

/// Options of a SET beyond the plain one (EX, PX, NX, XX).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SetOpts {
    /// Time to live in milliseconds, counted by the store's clock.
    pub ttl_ms: Option<u64>,
    pub cond: SetCond,
}

/// When a key expires: in some milliseconds from the store's now, or at a
/// time of the store's clock (Unix milliseconds in the runtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Deadline {
    In(i64),
    At(i64),
}

/// When EXPIRE applies (NX, XX, GT, LT).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExpireCond {
    #[default]
    Always,
    /// NX: only a key without a time to live.
    NoTtl,
    /// XX: only a key with one.
    HasTtl,
    /// GT: only to a later expiry (no time to live counts as infinite).
    Later,
    /// LT: only to an earlier one.
    Earlier,
}

/// A write to one key beyond GET's companions (SET, DEL, INCRBY, PEXPIRE):
/// the commands frameworks send. Every store applies it through
/// [`crate::store::apply_write`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Update {
    /// SET with GET, KEEPTTL, EXAT or PXAT: `expiry` replaces SET's time
    /// to live (`None`: none, unless `keep_ttl`); with `get` the result is
    /// the old value, whether or not the condition held.
    Set {
        value: Value,
        cond: SetCond,
        expiry: Option<Deadline>,
        keep_ttl: bool,
        get: bool,
    },
    GetDel,
    /// GETEX: the value, and its expiry changed (`Some(None)`: PERSIST).
    GetEx(Option<Option<Deadline>>),
    Append(Value),
    SetRange(u64, Value),
    /// INCRBYFLOAT by the increment as written (parsed as a long double
    /// would be, then printed as Redis prints it).
    IncrFloat(Value),
    Persist,
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with a condition.
    Expire(Deadline, ExpireCond),
    /// HSET, HDEL, HINCRBY...: a write to a hash.
    Hash(HashWrite),
}

impl Update {
    /// Whether it is a command of strings, which answers WRONGTYPE for a
    /// key of another type (SET without GET, PERSIST and EXPIRE take any).
    pub fn needs_string(&self) -> bool {
        matches!(
            self,
            Update::Set { get: true, .. }
                | Update::GetDel
                | Update::GetEx(_)
                | Update::Append(_)
                | Update::SetRange(..)
                | Update::IncrFloat(_)
        )
    }
}

/// A read of one key the answer of which is not its value: length, range,
/// type, expiry, existence. Answered from the cache when the key is there
/// (the same function as the store's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Inspect {
    Strlen,
    GetRange(i64, i64),
    /// TYPE: `string`, `hash` or `none`.
    Type,
    /// EXPIRETIME (`ms` false) or PEXPIRETIME: -1 without expiry, -2 absent.
    ExpireTime {
        ms: bool,
    },
    /// EXISTS, TOUCH: 1 or 0.
    Exists,
    /// HGET, HGETALL, HLEN...: a read of a hash.
    Hash(HashRead),
    /// WATCH: the key's version (0 for an absent key), which a
    /// [`Guard::Version`] then names.
    Version,
}

/// What must hold of a key for an atomic operation to apply at all: every
/// guard of one is checked before any of its parts applies; if one fails,
/// none applies and the result is [`OpResult::Aborted`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Guard {
    /// WATCH: the key's version is still this one (0: absent), so no write
    /// to it came since it was read.
    Version(u64),
}

/// A write to several keys of one slot, in one step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeysWrite {
    /// MSETNX: every key set (1) if none of them exists, else nothing (0).
    SetIfNone(Vec<(Key, Value)>),
    /// RENAME and RENAMENX (`copy` false: `from` goes), COPY (`copy`
    /// true): `from`'s value and time to live to `to`, which is replaced
    /// only with `replace`. `from` and `to` differ unless RENAME names one
    /// key twice.
    Move { from: Key, to: Key, copy: bool, replace: bool },
}

impl KeysWrite {
    /// The keys it writes, in order.
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            KeysWrite::SetIfNone(pairs) => pairs.iter().map(|(k, _)| &k[..]).collect(),
            KeysWrite::Move { from, to, .. } => vec![from, to],
        }
    }
}

/// A read of the whole database rather than of one key: the store answers
/// it in one transaction, for the server the client reached, which needs no
/// right for it (no slot is involved; acknowledged writes are all in the
/// store).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DbRead {
    /// SCAN and KEYS: the live keys written after version `after` (a cursor),
    /// in version order, looking at `count` rows at most; of them those
    /// matching `pattern` and, with `type_name`, of that type (a name no
    /// type has matches none).
    Scan { after: u64, count: u64, pattern: Option<Vec<u8>>, type_name: Option<String> },
    /// DBSIZE: how many live keys.
    Size,
    /// CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT: the live keys of one of
    /// Redis Cluster's 16384 slots, at most `count` of them (their number
    /// if `count_only`). Every row is looked at: no row keeps its slot.
    InSlot { slot: u16, count: u64, count_only: bool },
}

/// A client-visible operation on one key.
///
/// Keys with a time to live are never cached: their expiry is decided by the
/// store's clock alone, so no server's clock can serve an expired value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Op {
    Get(Key),
    Set(Key, Value),
    Del(Key),
    Incr(Key, i64),
    /// SET with EX/PX/NX/XX.
    SetWith(Key, Value, SetOpts),
    /// PEXPIRE: a time to live in milliseconds from now; 0 or less deletes.
    Expire(Key, i64),
    /// PTTL: the remaining time to live in milliseconds; -1 for a key
    /// without one, -2 for an absent key.
    Ttl(Key),
    Update(Key, Update),
    Inspect(Key, Inspect),
    /// A read of the whole database (SCAN, KEYS, DBSIZE).
    Db(DbRead),
    /// MULTI/EXEC, or a multi-key command, of one slot: the operations
    /// applied in one atomic store transaction, in order, as one operation
    /// (their results in a [`OpResult::Many`]). Never nested; never empty.
    Atomic(Vec<Op>),
    /// A condition of the atomic operation it is part of (alone, it only
    /// checks): answers OK where it holds.
    Guard(Key, Guard),
    /// MSETNX, RENAME, COPY: keys of one slot written in one step.
    Keys(KeysWrite),
}

impl Op {
    /// The key (the first one of an atomic operation: all are in its slot;
    /// none for a whole-database read).
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Get(k) | Op::Set(k, _) | Op::Del(k) | Op::Incr(k, _) => k,
            Op::SetWith(k, ..) | Op::Expire(k, _) | Op::Ttl(k) => k,
            Op::Update(k, _) | Op::Inspect(k, _) | Op::Guard(k, _) => k,
            Op::Atomic(ops) => ops.iter().find(|o| !matches!(o, Op::Db(_))).map_or(&[][..], |o| o.key()),
            Op::Keys(w) => w.keys().first().copied().unwrap_or_default(),
            Op::Db(_) => &[],
        }
    }

    /// Every key it reads or writes, an atomic operation's parts' in
    /// order (a key may come twice).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            Op::Db(_) => Vec::new(),
            Op::Keys(w) => w.keys(),
            Op::Atomic(ops) => ops.iter().flat_map(Op::keys).collect(),
            op => vec![op.key()],
        }
    }

    pub fn is_write(&self) -> bool {
        match self {
            Op::Get(_) | Op::Ttl(_) | Op::Inspect(..) | Op::Db(_) | Op::Guard(..) => false,
            Op::Atomic(ops) => ops.iter().any(Op::is_write),
            _ => true,
        }
    }
}

/// Why an operation failed, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorKind {
    /// No member of the slot's group could be reached in time.
    Unavailable,
    /// The request waited longer than the configured request timeout.
    Timeout,
    /// INCR on a value that is not a 64-bit integer, or an overflow.
    NotInteger,
    /// The store failed; the message says how.
    Store(String),
    /// A command's own error, the whole reply as Redis writes it
    /// (`ERR value is not a valid float`, ...).
    Reply(String),
    /// To a peer only: a draining server cannot pass this request on (no
    /// hop left); the peer routes it again once the master has told it
    /// who serves the slot. A server never gives it to a client.
    Leaving,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Unavailable => write!(f, "CLUSTERDOWN no member of the slot's group is reachable"),
            ErrorKind::Timeout => write!(f, "TRYAGAIN request timed out waiting for a serving right"),
            ErrorKind::NotInteger => write!(f, "ERR value is not an integer or out of range"),
            ErrorKind::Store(m) => write!(f, "ERR store: {m}"),
            ErrorKind::Reply(m) => f.write_str(m),
            ErrorKind::Leaving => write!(f, "TRYAGAIN the server is leaving"),
        }
    }
}

/// The result of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpResult {
    /// GET: the value, or none.
    Value(Option<Value>),
    /// SET.
    Ok,
    /// DEL: how many keys were removed (0 or 1).
    Deleted(u8),
    /// A SET NX/XX whose condition did not hold: nothing was written.
    NotSet,
    /// INCR: the new value.
    Int(i64),
    Err(ErrorKind),
    /// The results of an atomic operation's parts, in order.
    Many(Vec<OpResult>),
    /// A status reply (TYPE's `string`, `none`).
    Status(String),
    /// SCAN: the keys found, and the cursor to go on from (0: done).
    Keys {
        keys: Vec<Key>,
        next: u64,
    },
    /// HMGET, HKEYS, HVALS: values, each or none.
    Values(Vec<Option<Value>>),
    /// HGETALL, HSCAN: fields and their values.
    Pairs(Vec<(Value, Value)>),
    /// An atomic operation one of whose guards failed: nothing applied.
    Aborted,
}
