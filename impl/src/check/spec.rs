//! What the model's clients may observe: a sequential specification of one
//! key of a Redis-like key-value store (values, counters, conditional sets,
//! deletion, expiry, hashes and WRONGTYPE between the two), against which each key's history is checked for
//! linearizability. It is written from Redis's documented behaviour, not
//! from the store's code (`store::apply_write`), so the two check each
//! other.
//!
//! Expiry: the model's relative times to live outlast a run (see
//! [`KvCommand::op`]); what is specified of them is which operations set,
//! keep and clear a time to live, and that PTTL answers -2 for an absent
//! key, -1 for a key without one and otherwise at most the time set.
//! `PEXPIRE key 0` deletes at once. An absolute deadline (`SET ... PXAT`,
//! [`KvCommand::SetPxAt`]) is a time on the store's clock, which starts at
//! zero: the key lapses when the store's clock reaches it
//! ([`KvSpec::lapse`], applied by the linearizer at each of its ticks), and
//! a deadline already past deletes the key as it is set.

use failgroup_model::{
    Deadline, ErrorKind, ExpireCond, Guard, HashRead, HashWrite, Inspect, KeysWrite, Op, OpResult, SetCond, SetOpts,
    Update, Value,
};
use stateright::semantics::SequentialSpec;
use std::fmt;
use std::str::FromStr;

/// One key as the sequential specification holds it: a string (`value`),
/// a hash (`fields` not empty) or nothing; and its partner key (see
/// [`partner_of`]), which only RENAME and COPY touch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvSpec {
    pub value: Option<Value>,
    /// A hash's fields and values, in the order the fields were added.
    pub fields: Vec<(Value, Value)>,
    /// The time to live last set (ms), if the key has one.
    pub ttl: Option<u64>,
    /// The partner key's state; none while it is absent.
    pub partner: Option<Box<KvSpec>>,
}

/// The partner of a model key: a key of its slot (`{key}b`) that RENAME
/// and COPY move its value to and from, specified with it as one state.
pub fn partner_of(key: &[u8]) -> Vec<u8> {
    [b"{", key, b"}b"].concat()
}

/// The model key a key is, or is the partner of.
pub fn main_key(key: &[u8]) -> &[u8] {
    match key.strip_prefix(b"{").and_then(|k| k.strip_suffix(b"}b")) {
        Some(main) => main,
        None => key,
    }
}

impl KvSpec {
    /// The store's clock reads `now`: a key (or its partner) whose deadline
    /// has come is gone. Only absolute deadlines come within a run: a
    /// relative time to live counts from when it was set, so it is at least
    /// what `ttl` holds and the model's ([`LONG_TTL`]) outlast every run.
    pub fn lapse(&mut self, now: u64) {
        if let Some(p) = self.partner.as_deref_mut() {
            p.lapse(now);
            if !p.exists() {
                self.partner = None;
            }
        }
        if self.ttl.is_some_and(|t| t <= now) {
            *self = KvSpec { partner: self.partner.take(), ..KvSpec::default() };
        }
    }

    fn exists(&self) -> bool {
        self.value.is_some() || !self.fields.is_empty()
    }

    /// The key's own state, without its partner.
    fn alone(&self) -> KvSpec {
        KvSpec { partner: None, ..self.clone() }
    }

    /// MSETNX, RENAME, RENAMENX and COPY over the key and its partner.
    fn keys_write(&mut self, w: &KeysWrite) -> OpResult {
        // The key's state at 0, its partner's at 1.
        let mut both = [self.alone(), self.partner.as_deref().cloned().unwrap_or_default()];
        let at = |key: &[u8]| usize::from(main_key(key) != key);
        let result = match w {
            KeysWrite::SetIfNone(pairs) if pairs.iter().any(|(k, _)| both[at(k)].exists()) => OpResult::Int(0),
            KeysWrite::SetIfNone(pairs) => {
                for (k, v) in pairs {
                    both[at(k)] = KvSpec { value: Some(v.clone()), ..KvSpec::default() };
                }
                OpResult::Int(1)
            }
            KeysWrite::Move { from, to, copy, replace } => {
                // RENAME answers OK; RENAMENX and COPY 1 or 0.
                let rename = *replace && !*copy;
                let done = |moved: bool| match (rename, moved) {
                    (true, _) => OpResult::Ok,
                    (false, moved) => OpResult::Int(moved as i64),
                };
                if !both[at(from)].exists() {
                    if *copy {
                        OpResult::Int(0)
                    } else {
                        OpResult::Err(ErrorKind::Reply("ERR no such key".into()))
                    }
                } else if from == to {
                    done(false)
                } else if !*replace && both[at(to)].exists() {
                    OpResult::Int(0)
                } else {
                    both[at(to)] = both[at(from)].clone();
                    if !*copy {
                        both[at(from)] = KvSpec::default();
                    }
                    done(true)
                }
            }
        };
        let [main, partner] = both;
        *self = KvSpec { partner: partner.exists().then(|| Box::new(partner)), ..main };
        result
    }
}

fn wrong_type() -> OpResult {
    OpResult::Err(ErrorKind::Reply(failgroup_model::WRONGTYPE.into()))
}

/// Whether `op` is a command of strings (GET, INCR, APPEND, ...), which
/// answers WRONGTYPE for a hash.
fn of_strings(op: &Op) -> bool {
    matches!(op, Op::Get(_) | Op::Incr(..) | Op::Inspect(_, Inspect::Strlen | Inspect::GetRange(..)))
        || matches!(op, Op::Update(_, u) if u.needs_string())
}

/// Whether `op` is a command of hashes.
fn of_hashes(op: &Op) -> bool {
    matches!(op, Op::Update(_, Update::Hash(_)) | Op::Inspect(_, Inspect::Hash(_)))
}

impl KvSpec {
    fn int(&self) -> Option<i64> {
        match &self.value {
            None => Some(0),
            Some(v) => std::str::from_utf8(v).ok()?.parse().ok(),
        }
    }
}

impl SequentialSpec for KvSpec {
    type Op = Op;
    type Ret = OpResult;

    fn invoke(&mut self, op: &Op) -> OpResult {
        // A command of the key alone leaves its partner as it is.
        if !matches!(op, Op::Keys(_) | Op::Atomic(_)) && self.partner.is_some() {
            let partner = self.partner.take();
            let result = self.invoke(op);
            self.partner = partner;
            return result;
        }
        let is_hash = !self.fields.is_empty();
        if (is_hash && of_strings(op)) || (self.value.is_some() && of_hashes(op)) {
            return wrong_type();
        }
        let exists = self.value.is_some() || is_hash;
        match op {
            Op::Get(_) => OpResult::Value(self.value.clone()),
            Op::Set(_, v) => {
                *self = KvSpec { value: Some(v.clone()), ..KvSpec::default() };
                OpResult::Ok
            }
            Op::SetWith(_, v, SetOpts { ttl_ms, cond }) => {
                let applies = match cond {
                    SetCond::Always => true,
                    SetCond::IfAbsent => !exists,
                    SetCond::IfPresent => exists,
                };
                if !applies {
                    return OpResult::NotSet;
                }
                *self = KvSpec { value: Some(v.clone()), ttl: *ttl_ms, ..KvSpec::default() };
                OpResult::Ok
            }
            Op::Del(_) => {
                *self = KvSpec::default();
                OpResult::Deleted(exists as u8)
            }
            // INCRBY keeps the key's time to live.
            Op::Incr(_, d) => match self.int().map(|n| n.checked_add(*d)) {
                Some(Some(n)) => {
                    self.value = Some(n.to_string().into_bytes());
                    OpResult::Int(n)
                }
                Some(None) => OpResult::Err(ErrorKind::Reply("ERR increment or decrement would overflow".into())),
                None => OpResult::Err(ErrorKind::NotInteger),
            },
            Op::Expire(..) if !exists => OpResult::Int(0),
            Op::Expire(_, ms) if *ms <= 0 => {
                *self = KvSpec::default();
                OpResult::Int(1)
            }
            Op::Expire(_, ms) => {
                self.ttl = Some(*ms as u64);
                OpResult::Int(1)
            }
            Op::Ttl(_) => OpResult::Int(match (exists, self.ttl) {
                (false, _) => -2,
                (true, None) => -1,
                (true, Some(t)) => t as i64,
            }),
            Op::Update(_, u) => self.update(u),
            Op::Inspect(_, what) => self.inspect(what),
            // MULTI/EXEC: each command in order, nothing in between.
            Op::Atomic(ops) => OpResult::Many(ops.iter().map(|o| self.invoke(o)).collect()),
            Op::Keys(w) => self.keys_write(w),
            // WATCH's versions are the store's, which this specification
            // does not know: no model command sends one (WATCH is tested end
            // to end in tests/tests/resp_transactions.rs).
            Op::Guard(_, Guard::Version(_)) => OpResult::Err(ErrorKind::Reply("ERR versions are not specified".into())),
            // Not an operation on one key: no key's history holds one.
            Op::Db(_) => OpResult::Err(ErrorKind::Reply("ERR not an operation on one key".into())),
        }
    }

    /// PTTL of a key with a time to live may answer anything from 0 to
    /// the time set (time passes); every other answer is exact.
    fn is_valid_step(&mut self, op: &Op, ret: &OpResult) -> bool {
        let exists = self.value.is_some() || !self.fields.is_empty();
        match (op, ret, exists, self.ttl) {
            (Op::Ttl(_), OpResult::Int(r), true, Some(t)) => (0..=t as i64).contains(r),
            _ => &self.invoke(op) == ret,
        }
    }
}

/// Milliseconds to live of a deadline; the model's clocks start at zero,
/// so a time `At` is also the most that can be left of it.
fn ms(d: &Deadline) -> i64 {
    match d {
        Deadline::In(ms) | Deadline::At(ms) => *ms,
    }
}

impl KvSpec {
    fn update(&mut self, u: &Update) -> OpResult {
        let old = self.value.clone();
        let exists = old.is_some() || !self.fields.is_empty();
        match u {
            Update::Hash(h) => self.hash_write(h),
            Update::Set { value, cond, expiry, keep_ttl, get } => {
                let applies = match cond {
                    SetCond::Always => true,
                    SetCond::IfAbsent => !exists,
                    SetCond::IfPresent => exists,
                };
                if applies {
                    let ttl = match expiry {
                        Some(d) => Some(ms(d)),
                        None if *keep_ttl => self.ttl.map(|t| t as i64),
                        None => None,
                    };
                    *self = match ttl {
                        Some(t) if t <= 0 => KvSpec::default(),
                        t => KvSpec { value: Some(value.clone()), ttl: t.map(|t| t as u64), ..KvSpec::default() },
                    };
                }
                match (get, applies) {
                    (true, _) => OpResult::Value(old),
                    (false, true) => OpResult::Ok,
                    (false, false) => OpResult::NotSet,
                }
            }
            Update::GetDel => {
                *self = KvSpec::default();
                OpResult::Value(old)
            }
            Update::GetEx(change) => {
                match change {
                    _ if !exists => {}
                    None => {}
                    Some(None) => self.ttl = None,
                    Some(Some(d)) if ms(d) <= 0 => *self = KvSpec::default(),
                    Some(Some(d)) => self.ttl = Some(ms(d) as u64),
                }
                OpResult::Value(old)
            }
            Update::Append(tail) => {
                let mut v = old.unwrap_or_default();
                v.extend_from_slice(tail);
                let n = v.len() as i64;
                self.value = Some(v);
                OpResult::Int(n)
            }
            Update::SetRange(at, part) => {
                let mut v = old.unwrap_or_default();
                if !part.is_empty() {
                    let at = *at as usize;
                    if v.len() < at + part.len() {
                        v.resize(at + part.len(), 0);
                    }
                    v[at..at + part.len()].copy_from_slice(part);
                    self.value = Some(v.clone());
                }
                OpResult::Int(v.len() as i64)
            }
            Update::IncrFloat(by) => {
                let num = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|s| s.parse::<f64>().ok());
                let (Some(base), Some(by)) = (old.as_deref().map_or(Some(0.0), num), num(by)) else {
                    return OpResult::Err(ErrorKind::Reply("ERR value is not a valid float".into()));
                };
                let text = format!("{}", base + by).into_bytes();
                self.value = Some(text.clone());
                OpResult::Value(Some(text))
            }
            Update::Persist => {
                let had = exists && self.ttl.is_some();
                self.ttl = None;
                OpResult::Int(had as i64)
            }
            Update::Expire(d, cond) => {
                let new = ms(d);
                let holds = exists
                    && match (cond, self.ttl) {
                        (ExpireCond::Always, _) => true,
                        (ExpireCond::NoTtl, t) => t.is_none(),
                        (ExpireCond::HasTtl, t) => t.is_some(),
                        (ExpireCond::Later, t) => t.is_some_and(|t| new > t as i64),
                        (ExpireCond::Earlier, t) => t.is_none_or(|t| new < t as i64),
                    };
                if holds {
                    match new {
                        n if n <= 0 => *self = KvSpec::default(),
                        n => self.ttl = Some(n as u64),
                    }
                }
                OpResult::Int(holds as i64)
            }
        }
    }

    /// HSET, HSETNX, HDEL, HINCRBY, HINCRBYFLOAT: a new hash has no time
    /// to live; a hash whose last field goes is deleted.
    fn hash_write(&mut self, h: &HashWrite) -> OpResult {
        let mut fields = self.fields.clone();
        let set = |fields: &mut Vec<(Value, Value)>, f: &Value, v: Value| -> i64 {
            match fields.iter_mut().find(|(k, _)| k == f) {
                Some(slot) => {
                    slot.1 = v;
                    0
                }
                None => {
                    fields.push((f.clone(), v));
                    1
                }
            }
        };
        let old = |fields: &[(Value, Value)], f: &Value| fields.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
        let reply = |m: &str| OpResult::Err(ErrorKind::Reply(m.into()));
        let result = match h {
            HashWrite::Set(pairs) => OpResult::Int(pairs.iter().map(|(f, v)| set(&mut fields, f, v.clone())).sum()),
            HashWrite::SetNx(f, _) if old(&fields, f).is_some() => OpResult::Int(0),
            HashWrite::SetNx(f, v) => OpResult::Int(set(&mut fields, f, v.clone())),
            HashWrite::Del(fs) => {
                let n = fields.len();
                fields.retain(|(k, _)| !fs.contains(k));
                OpResult::Int((n - fields.len()) as i64)
            }
            HashWrite::IncrBy(f, by) => {
                let base = old(&fields, f).map_or(Some(0), |v| std::str::from_utf8(&v).ok()?.parse::<i64>().ok());
                match base.map(|b| b.checked_add(*by)) {
                    None => return reply("ERR hash value is not an integer"),
                    Some(None) => return reply("ERR increment or decrement would overflow"),
                    Some(Some(n)) => {
                        set(&mut fields, f, n.to_string().into_bytes());
                        OpResult::Int(n)
                    }
                }
            }
            HashWrite::IncrByFloat(f, by) => {
                let num = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|s| s.parse::<f64>().ok());
                let Some(base) = old(&fields, f).map_or(Some(0.0), |v| num(&v)) else {
                    return reply("ERR hash value is not a float");
                };
                let sum = base + num(by).unwrap_or(f64::NAN);
                if !sum.is_finite() {
                    return reply("ERR increment would produce NaN or Infinity");
                }
                let text = format!("{sum}").into_bytes();
                set(&mut fields, f, text.clone());
                OpResult::Value(Some(text))
            }
        };
        if fields.is_empty() {
            *self = KvSpec::default();
        } else {
            self.fields = fields;
        }
        result
    }

    fn inspect(&self, what: &Inspect) -> OpResult {
        let v = self.value.as_deref();
        let exists = v.is_some() || !self.fields.is_empty();
        match what {
            Inspect::Exists => OpResult::Int(exists as i64),
            Inspect::Type => OpResult::Status(
                match (v, exists) {
                    (Some(_), _) => "string",
                    (None, true) => "hash",
                    (None, false) => "none",
                }
                .into(),
            ),
            Inspect::Strlen => OpResult::Int(v.map_or(0, |v| v.len() as i64)),
            Inspect::ExpireTime { .. } => OpResult::Int(match (exists, self.ttl) {
                (false, _) => -2,
                (true, None) => -1,
                (true, Some(t)) => t as i64,
            }),
            Inspect::Version => OpResult::Err(ErrorKind::Reply("ERR versions are not specified".into())),
            Inspect::Hash(read) => {
                let get = |f: &Value| self.fields.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
                match read {
                    HashRead::Get(f) => OpResult::Value(get(f)),
                    HashRead::MGet(fs) => OpResult::Values(fs.iter().map(get).collect()),
                    HashRead::GetAll => OpResult::Pairs(self.fields.clone()),
                    HashRead::Keys => OpResult::Values(self.fields.iter().map(|(k, _)| Some(k.clone())).collect()),
                    HashRead::Vals => OpResult::Values(self.fields.iter().map(|(_, v)| Some(v.clone())).collect()),
                    HashRead::Len => OpResult::Int(self.fields.len() as i64),
                    HashRead::Exists(f) => OpResult::Int(get(f).is_some() as i64),
                    HashRead::StrLen(f) => OpResult::Int(get(f).map_or(0, |v| v.len() as i64)),
                    HashRead::Scan(pattern) => OpResult::Pairs(
                        self.fields
                            .iter()
                            .filter(|(k, _)| {
                                pattern.as_ref().is_none_or(|p| failgroup_model::glob::matches(p, k, false))
                            })
                            .cloned()
                            .collect(),
                    ),
                }
            }
            Inspect::GetRange(a, b) => {
                let v = v.unwrap_or_default();
                let n = v.len() as i64;
                let norm = |i: i64| if i < 0 { (n + i).max(0) } else { i };
                let both_negative_reversed = *a < 0 && *b < 0 && a > b;
                let (a, b) = (norm(*a), norm(*b).min(n - 1));
                let empty = both_negative_reversed || a > b || n == 0;
                OpResult::Value(Some(if empty { Vec::new() } else { v[a as usize..=b as usize].to_vec() }))
            }
        }
    }

    /// Whether `observed` is an answer the specification allows where it
    /// predicted `predicted` for `op` (PTTL counts down as time passes).
    pub(super) fn allows(op: &Op, predicted: &OpResult, observed: &OpResult) -> bool {
        match (op, predicted, observed) {
            (Op::Ttl(_), OpResult::Int(t), OpResult::Int(r)) if *t >= 0 => (0..=*t).contains(r),
            _ => predicted == observed,
        }
    }
}

/// A command a model client runs, as `failgroup check --commands` names
/// it: every data command the servers accept, on one key. MGET and MSET
/// are carried out as one single-key operation per key (see
/// `impl/src/commands.rs`), so GET and SET cover them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvCommand {
    Get,
    Set,
    SetNx,
    SetXx,
    /// SET with PX (a time to live that outlasts the run).
    SetPx,
    Del,
    Incr,
    Decr,
    IncrBy,
    /// PEXPIRE with a time to live that outlasts the run.
    Expire,
    /// PEXPIRE 0: deletes the key.
    ExpireNow,
    Ttl,
    GetDel,
    Append,
    /// SET with GET: the old value back.
    SetGet,
    /// PEXPIRE with NX (a time to live that outlasts the run).
    ExpireNx,
    Persist,
    Strlen,
    /// MULTI INCR GET EXEC: one atomic operation of two commands.
    MultiIncrGet,
    /// MULTI SET APPEND STRLEN EXEC.
    MultiSetAppend,
    /// HSET key f value: a hash (GET of it answers WRONGTYPE).
    HSet,
    /// HINCRBY key f 1.
    HIncrBy,
    /// HDEL key f: the hash goes with its last field.
    HDel,
    HGetAll,
    /// MSETNX key value (one key: the model's keys are each in a slot of
    /// their own).
    MSetNx,
    /// RENAME key to its partner.
    Rename,
    /// COPY the key to its partner (not REPLACE).
    Copy,
    /// SET key value PXAT [`SHORT_AT`]: a key that lapses within a run.
    SetPxAt,
}

/// A time to live no model run outlives (ticks).
pub const LONG_TTL: u64 = 1_000;

/// The store-clock time (ticks) at which `set-pxat`'s key lapses: after
/// the first operations, before later ones start (`--op-horizon`).
pub const SHORT_AT: u64 = 3;

impl KvCommand {
    pub const ALL: [KvCommand; 28] = [
        KvCommand::Get,
        KvCommand::Set,
        KvCommand::SetNx,
        KvCommand::SetXx,
        KvCommand::SetPx,
        KvCommand::Del,
        KvCommand::Incr,
        KvCommand::Decr,
        KvCommand::IncrBy,
        KvCommand::Expire,
        KvCommand::ExpireNow,
        KvCommand::Ttl,
        KvCommand::GetDel,
        KvCommand::Append,
        KvCommand::SetGet,
        KvCommand::ExpireNx,
        KvCommand::Persist,
        KvCommand::Strlen,
        KvCommand::MultiIncrGet,
        KvCommand::MultiSetAppend,
        KvCommand::HSet,
        KvCommand::HIncrBy,
        KvCommand::HDel,
        KvCommand::HGetAll,
        KvCommand::MSetNx,
        KvCommand::Rename,
        KvCommand::Copy,
        KvCommand::SetPxAt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KvCommand::Get => "get",
            KvCommand::Set => "set",
            KvCommand::SetNx => "set-nx",
            KvCommand::SetXx => "set-xx",
            KvCommand::SetPx => "set-px",
            KvCommand::Del => "del",
            KvCommand::Incr => "incr",
            KvCommand::Decr => "decr",
            KvCommand::IncrBy => "incrby",
            KvCommand::Expire => "pexpire",
            KvCommand::ExpireNow => "pexpire-0",
            KvCommand::Ttl => "pttl",
            KvCommand::GetDel => "getdel",
            KvCommand::Append => "append",
            KvCommand::SetGet => "set-get",
            KvCommand::ExpireNx => "pexpire-nx",
            KvCommand::Persist => "persist",
            KvCommand::Strlen => "strlen",
            KvCommand::MultiIncrGet => "multi-incr-get",
            KvCommand::MultiSetAppend => "multi-set-append",
            KvCommand::HSet => "hset",
            KvCommand::HIncrBy => "hincrby",
            KvCommand::HDel => "hdel",
            KvCommand::HGetAll => "hgetall",
            KvCommand::MSetNx => "msetnx",
            KvCommand::Rename => "rename",
            KvCommand::Copy => "copy",
            KvCommand::SetPxAt => "set-pxat",
        }
    }

    /// The operation on `key`; `value` is unique to the client and the
    /// operation (a decimal number, so INCR applies to it).
    pub fn op(self, key: Vec<u8>, value: u64) -> Op {
        let v = value.to_string().into_bytes();
        let with = |ttl_ms, cond| Op::SetWith(key.clone(), v.clone(), SetOpts { ttl_ms, cond });
        match self {
            KvCommand::Get => Op::Get(key),
            KvCommand::Set => Op::Set(key, v),
            KvCommand::SetNx => with(None, SetCond::IfAbsent),
            KvCommand::SetXx => with(None, SetCond::IfPresent),
            KvCommand::SetPx => with(Some(LONG_TTL), SetCond::Always),
            KvCommand::Del => Op::Del(key),
            KvCommand::Incr => Op::Incr(key, 1),
            KvCommand::Decr => Op::Incr(key, -1),
            KvCommand::IncrBy => Op::Incr(key, 5),
            KvCommand::Expire => Op::Expire(key, LONG_TTL as i64),
            KvCommand::ExpireNow => Op::Expire(key, 0),
            KvCommand::Ttl => Op::Ttl(key),
            KvCommand::GetDel => Op::Update(key, Update::GetDel),
            KvCommand::Append => Op::Update(key, Update::Append(b"x".to_vec())),
            KvCommand::SetGet => {
                let set = Update::Set { value: v, cond: SetCond::Always, expiry: None, keep_ttl: false, get: true };
                Op::Update(key, set)
            }
            KvCommand::ExpireNx => Op::Update(key, Update::Expire(Deadline::In(LONG_TTL as i64), ExpireCond::NoTtl)),
            KvCommand::Persist => Op::Update(key, Update::Persist),
            KvCommand::Strlen => Op::Inspect(key, Inspect::Strlen),
            KvCommand::MultiIncrGet => Op::Atomic(vec![Op::Incr(key.clone(), 1), Op::Get(key)]),
            KvCommand::MultiSetAppend => Op::Atomic(vec![
                Op::Set(key.clone(), v),
                Op::Update(key.clone(), Update::Append(b"x".to_vec())),
                Op::Inspect(key, Inspect::Strlen),
            ]),
            KvCommand::HSet => Op::Update(key, Update::Hash(HashWrite::Set(vec![(b"f".to_vec(), v)]))),
            KvCommand::HIncrBy => Op::Update(key, Update::Hash(HashWrite::IncrBy(b"f".to_vec(), 1))),
            KvCommand::HDel => Op::Update(key, Update::Hash(HashWrite::Del(vec![b"f".to_vec()]))),
            KvCommand::HGetAll => Op::Inspect(key, Inspect::Hash(HashRead::GetAll)),
            KvCommand::MSetNx => Op::Keys(KeysWrite::SetIfNone(vec![(key, v)])),
            KvCommand::Rename => {
                Op::Keys(KeysWrite::Move { to: partner_of(&key), from: key, copy: false, replace: true })
            }
            KvCommand::Copy => {
                Op::Keys(KeysWrite::Move { to: partner_of(&key), from: key, copy: true, replace: false })
            }
            KvCommand::SetPxAt => {
                let at = Some(Deadline::At(SHORT_AT as i64));
                Op::Update(
                    key,
                    Update::Set { value: v, cond: SetCond::Always, expiry: at, keep_ttl: false, get: false },
                )
            }
        }
    }
}

impl fmt::Display for KvCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KvCommand {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<KvCommand, UnknownName> {
        KvCommand::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| UnknownName {
            what: "command",
            name: s.to_string(),
            known: KvCommand::ALL.iter().map(|c| c.name()).collect(),
        })
    }
}

/// A name that is not one of those known (a command, a strategy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub known: Vec<&'static str>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?} (one of: {})", self.what, self.name, self.known.join(", "))
    }
}

impl std::error::Error for UnknownName {}

#[cfg(test)]
mod tests {
    use super::super::linearizer::Linearizer;
    use super::*;
    use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

    fn k() -> Vec<u8> {
        b"k".to_vec()
    }

    /// Hashes and strings on one key: WRONGTYPE across types, SET
    /// replaces a hash, a hash goes with its last field; the store's
    /// semantics answer each step as the specification does.
    #[test]
    fn hashes_follow_redis() {
        let wrong = wrong_type();
        let steps: Vec<(Op, OpResult)> = vec![
            (KvCommand::HSet.op(k(), 1), OpResult::Int(1)),
            (KvCommand::Get.op(k(), 0), wrong.clone()),
            (KvCommand::Incr.op(k(), 0), wrong.clone()),
            (KvCommand::SetGet.op(k(), 5), wrong.clone()),
            (KvCommand::HIncrBy.op(k(), 0), OpResult::Int(2)),
            (KvCommand::HGetAll.op(k(), 0), OpResult::Pairs(vec![(b"f".to_vec(), b"2".to_vec())])),
            (KvCommand::Strlen.op(k(), 0), wrong.clone()),
            (Op::Inspect(k(), Inspect::Type), OpResult::Status("hash".into())),
            (KvCommand::Expire.op(k(), 0), OpResult::Int(1)),
            (KvCommand::HSet.op(k(), 3), OpResult::Int(0)),
            (KvCommand::Ttl.op(k(), 0), OpResult::Int(LONG_TTL as i64)),
            (KvCommand::HDel.op(k(), 0), OpResult::Int(1)),
            (Op::Inspect(k(), Inspect::Exists), OpResult::Int(0)),
            (KvCommand::HSet.op(k(), 4), OpResult::Int(1)),
            (KvCommand::Ttl.op(k(), 0), OpResult::Int(-1)),
            (KvCommand::Set.op(k(), 6), OpResult::Ok),
            (KvCommand::HGetAll.op(k(), 0), wrong.clone()),
            (KvCommand::HDel.op(k(), 0), wrong.clone()),
            (
                KvCommand::MultiIncrGet.op(k(), 0),
                OpResult::Many(vec![OpResult::Int(7), OpResult::Value(Some(b"7".to_vec()))]),
            ),
            (KvCommand::Del.op(k(), 0), OpResult::Deleted(1)),
            (KvCommand::HIncrBy.op(k(), 0), OpResult::Int(1)),
            (
                Op::Atomic(vec![
                    KvCommand::HSet.op(k(), 9),
                    KvCommand::Append.op(k(), 0),
                    KvCommand::HGetAll.op(k(), 0),
                ]),
                OpResult::Many(vec![
                    OpResult::Int(0),
                    wrong.clone(),
                    OpResult::Pairs(vec![(b"f".to_vec(), b"9".to_vec())]),
                ]),
            ),
        ];
        agree(steps);
    }

    /// MSETNX, RENAME, RENAMENX and COPY between a key and its partner.
    #[test]
    fn keys_of_a_slot_follow_redis() {
        let p = partner_of(&k());
        let mv = |from: &[u8], to: &[u8], copy, replace| {
            Op::Keys(KeysWrite::Move { from: from.to_vec(), to: to.to_vec(), copy, replace })
        };
        let no_such_key = OpResult::Err(ErrorKind::Reply("ERR no such key".into()));
        agree(vec![
            (KvCommand::Rename.op(k(), 0), no_such_key.clone()),
            (KvCommand::Copy.op(k(), 0), OpResult::Int(0)),
            (KvCommand::MSetNx.op(k(), 1), OpResult::Int(1)),
            (KvCommand::MSetNx.op(k(), 2), OpResult::Int(0)),
            (KvCommand::Expire.op(k(), 0), OpResult::Int(1)),
            (KvCommand::Copy.op(k(), 0), OpResult::Int(1)),
            (KvCommand::Copy.op(k(), 0), OpResult::Int(0)),
            (mv(&k(), &k(), false, true), OpResult::Ok),
            (mv(&k(), &k(), false, false), OpResult::Int(0)),
            (KvCommand::Set.op(k(), 3), OpResult::Ok),
            (mv(&k(), &p, false, false), OpResult::Int(0)),
            (KvCommand::Rename.op(k(), 0), OpResult::Ok),
            (KvCommand::Get.op(k(), 0), OpResult::Value(None)),
            (mv(&p, &k(), false, false), OpResult::Int(1)),
            (KvCommand::Get.op(k(), 0), OpResult::Value(Some(b"3".to_vec()))),
            (KvCommand::Ttl.op(k(), 0), OpResult::Int(-1)),
            (KvCommand::HSet.op(k(), 4), wrong_type()),
            (KvCommand::Del.op(k(), 0), OpResult::Deleted(1)),
            (KvCommand::HSet.op(k(), 4), OpResult::Int(1)),
            (KvCommand::Expire.op(k(), 0), OpResult::Int(1)),
            (KvCommand::Copy.op(k(), 0), OpResult::Int(1)),
            (mv(&p, &k(), true, false), OpResult::Int(0)),
            (KvCommand::Del.op(k(), 0), OpResult::Deleted(1)),
            (mv(&p, &k(), false, true), OpResult::Ok),
            (KvCommand::HGetAll.op(k(), 0), OpResult::Pairs(vec![(b"f".to_vec(), b"4".to_vec())])),
            (KvCommand::Ttl.op(k(), 0), OpResult::Int(LONG_TTL as i64)),
            (KvCommand::MSetNx.op(k(), 5), OpResult::Int(0)),
        ]);
    }

    /// Runs `steps` through the specification and through the store's
    /// semantics (`MemStore`), each an atomic operation: both must answer
    /// each step as written.
    fn agree(steps: Vec<(Op, OpResult)>) {
        use failgroup_model::{MemStore, Mode, Store, StoreOp, StoreReply};
        let mut spec = KvSpec::default();
        let mut store = MemStore::new(Mode::Available, None);
        for (i, (op, want)) in steps.into_iter().enumerate() {
            assert_eq!(spec.invoke(&op), want, "step {i}: the spec on {op:?}");
            let ops = match &op {
                Op::Atomic(ops) => ops.clone(),
                op => vec![op.clone()],
            };
            let req = failgroup_model::ReqId { client: failgroup_model::ClientId(1), seq: i as u64 };
            let at = StoreOp::Atomic { slot: failgroup_model::Slot(0), fence: None, req, ops };
            let StoreReply::Atomic { result: OpResult::Many(got), .. } =
                store.execute(failgroup_model::Holder::default(), at, failgroup_model::Time(0))
            else {
                panic!("step {i}: not an atomic reply")
            };
            let got = if matches!(op, Op::Atomic(_)) { OpResult::Many(got) } else { got[0].clone() };
            assert_eq!(got, want, "step {i}: the store on {op:?}");
        }
    }

    /// The commands frameworks send, and a transaction as one step.
    #[test]
    fn new_commands_and_transactions_follow_redis() {
        let mut s = KvSpec::default();
        assert_eq!(s.invoke(&KvCommand::SetGet.op(k(), 7)), OpResult::Value(None));
        assert_eq!(
            s.invoke(&KvCommand::MultiIncrGet.op(k(), 0)),
            OpResult::Many(vec![OpResult::Int(8), OpResult::Value(Some(b"8".to_vec()))])
        );
        assert_eq!(s.invoke(&KvCommand::Append.op(k(), 0)), OpResult::Int(2));
        assert_eq!(s.invoke(&KvCommand::Strlen.op(k(), 0)), OpResult::Int(2));
        assert_eq!(s.invoke(&KvCommand::ExpireNx.op(k(), 0)), OpResult::Int(1));
        assert_eq!(s.invoke(&KvCommand::ExpireNx.op(k(), 0)), OpResult::Int(0));
        assert_eq!(s.invoke(&KvCommand::Persist.op(k(), 0)), OpResult::Int(1));
        assert_eq!(s.invoke(&KvCommand::GetDel.op(k(), 0)), OpResult::Value(Some(b"8x".to_vec())));
        assert_eq!(
            s.invoke(&KvCommand::MultiSetAppend.op(k(), 12)),
            OpResult::Many(vec![OpResult::Ok, OpResult::Int(3), OpResult::Int(3)])
        );
        // The store's semantics agree, command by command.
        let mut store = failgroup_model::MemStore::new(failgroup_model::Mode::Available, None);
        let mut spec = KvSpec::default();
        for (i, c) in KvCommand::ALL.iter().chain(KvCommand::ALL.iter().rev()).enumerate() {
            let op = c.op(k(), i as u64);
            let req = failgroup_model::ReqId { client: failgroup_model::ClientId(1), seq: i as u64 };
            let from = failgroup_model::Holder::default();
            let reply = failgroup_model::Store::execute(
                &mut store,
                from,
                failgroup_model::StoreOp::Atomic {
                    slot: failgroup_model::Slot(0),
                    fence: None,
                    req,
                    ops: match &op {
                        Op::Atomic(ops) => ops.clone(),
                        op => vec![op.clone()],
                    },
                },
                failgroup_model::Time(0),
            );
            let failgroup_model::StoreReply::Atomic { result: OpResult::Many(got), .. } = reply else {
                panic!("{c}: {reply:?}")
            };
            let got = if matches!(op, Op::Atomic(_)) { OpResult::Many(got) } else { got[0].clone() };
            let want = spec.invoke(&op);
            assert!(KvSpec::allows(&op, &want, &got), "{c}: the spec says {want:?}, the store {got:?}");
        }
    }

    #[test]
    fn counters_expiry_and_conditions_follow_redis() {
        let mut s = KvSpec::default();
        assert_eq!(s.invoke(&Op::Ttl(k())), OpResult::Int(-2));
        assert_eq!(s.invoke(&KvCommand::SetXx.op(k(), 1)), OpResult::NotSet);
        assert_eq!(s.invoke(&KvCommand::Incr.op(k(), 0)), OpResult::Int(1));
        assert_eq!(s.invoke(&KvCommand::SetNx.op(k(), 9)), OpResult::NotSet);
        assert_eq!(s.invoke(&KvCommand::Expire.op(k(), 0)), OpResult::Int(1));
        assert!(s.is_valid_step(&Op::Ttl(k()), &OpResult::Int(3)));
        assert!(!s.is_valid_step(&Op::Ttl(k()), &OpResult::Int(-1)));
        // INCR keeps the time to live, SET clears it.
        assert_eq!(s.invoke(&KvCommand::IncrBy.op(k(), 0)), OpResult::Int(6));
        assert!(s.ttl.is_some());
        assert_eq!(s.invoke(&KvCommand::Set.op(k(), 7)), OpResult::Ok);
        assert_eq!(s.invoke(&Op::Ttl(k())), OpResult::Int(-1));
        assert_eq!(s.invoke(&Op::Set(k(), b"x".to_vec())), OpResult::Ok);
        assert_eq!(s.invoke(&KvCommand::Decr.op(k(), 0)), OpResult::Err(ErrorKind::NotInteger));
        assert_eq!(s.invoke(&KvCommand::ExpireNow.op(k(), 0)), OpResult::Int(1));
        assert_eq!(s.invoke(&Op::Get(k())), OpResult::Value(None));
        assert_eq!(s.invoke(&KvCommand::Expire.op(k(), 0)), OpResult::Int(0));
        assert_eq!(s.invoke(&Op::Del(k())), OpResult::Deleted(0));
    }

    /// A key set to lapse at [`SHORT_AT`] is gone for every read that starts
    /// once the store's clock reaches it, and there for one that returned
    /// before; a read overlapping the instant may see either; a deadline
    /// already past deletes the key as it is set.
    #[test]
    fn keys_lapse_when_the_store_clock_reaches_their_deadline() {
        let set = || KvCommand::SetPxAt.op(k(), 7);
        let seven = OpResult::Value(Some(b"7".to_vec()));
        let run = |read_before: bool, overlaps: bool, seen: &OpResult| {
            let mut l = Linearizer::default();
            l.tick(1);
            l.invoke(0, set());
            l.ret(0, &OpResult::Ok);
            if read_before {
                l.invoke(1, Op::Get(k()));
                l.ret(1, &seven);
            }
            if overlaps {
                l.invoke(1, Op::Get(k()));
            }
            l.tick(SHORT_AT);
            if !overlaps {
                l.invoke(1, Op::Get(k()));
            }
            l.ret(1, seen);
            l.is_linearizable()
        };
        assert!(run(true, false, &OpResult::Value(None)), "there before, gone after");
        assert!(!run(true, false, &seven), "read after the deadline");
        assert!(run(false, true, &seven) && run(false, true, &OpResult::Value(None)), "overlapping: either");
        // Set after its deadline: never there.
        let mut l = Linearizer::default();
        l.tick(SHORT_AT + 1);
        l.invoke(0, set());
        l.ret(0, &OpResult::Ok);
        l.invoke(1, Op::Get(k()));
        l.ret(1, &seven);
        assert!(!l.is_linearizable(), "a key set past its deadline was read");
        // A relative time to live outlasts every tick of a run.
        let mut s = KvSpec::default();
        s.invoke(&KvCommand::SetPx.op(k(), 1));
        s.lapse(LONG_TTL - 1);
        assert!(s.exists());
    }

    /// The just-in-time checker agrees with stateright's tester (which
    /// keeps the whole history) on these histories.
    #[test]
    fn the_linearizer_catches_a_lost_increment_and_a_stale_read() {
        let mut l = Linearizer::default();
        l.invoke(0, Op::Incr(k(), 1));
        l.ret(0, &OpResult::Int(1));
        l.invoke(1, Op::Incr(k(), 1));
        l.ret(1, &OpResult::Int(1));
        assert!(!l.is_linearizable(), "two increments both answered 1");

        let mut l = Linearizer::default();
        l.invoke(0, Op::Set(k(), b"1".to_vec()));
        l.ret(0, &OpResult::Ok);
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(None));
        assert!(!l.is_linearizable(), "a read after a completed write missed it");

        let mut l = Linearizer::default();
        l.invoke(0, Op::Set(k(), b"1".to_vec()));
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(None));
        l.ret(0, &OpResult::Ok);
        assert!(l.is_linearizable(), "overlapping: either order");

        // An operation that never returns may or may not have taken effect.
        let mut l = Linearizer::default();
        l.invoke(0, Op::Incr(k(), 1));
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(Some(b"1".to_vec())));
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(None));
        assert!(!l.is_linearizable(), "a write seen, then unseen");
    }

    /// An abandoned operation may take effect later, or never; once
    /// forgotten, it no longer may.
    #[test]
    fn an_abandoned_operation_may_or_may_not_take_effect() {
        let mut l = Linearizer::default();
        l.invoke(0, Op::Incr(k(), 1));
        l.abandon(0);
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(None));
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(Some(b"1".to_vec())));
        assert!(l.is_linearizable(), "unseen, then seen: it took effect in between");
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(None));
        assert!(!l.is_linearizable(), "seen, then unseen");

        let mut l = Linearizer::default();
        l.invoke(0, Op::Incr(k(), 1));
        l.abandon(0);
        l.forget(0);
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(None));
        l.invoke(1, Op::Get(k()));
        l.ret(1, &OpResult::Value(Some(b"1".to_vec())));
        assert!(!l.is_linearizable(), "forgotten, unseen, then seen");
    }

    /// The tester with this spec catches a lost increment and a stale read.
    #[test]
    fn a_lost_increment_and_a_stale_read_are_not_linearizable() {
        let mut t = LinearizabilityTester::<u16, KvSpec>::new(KvSpec::default());
        t.on_invoke(0, Op::Incr(k(), 1)).unwrap();
        t.on_return(0, OpResult::Int(1)).unwrap();
        t.on_invoke(1, Op::Incr(k(), 1)).unwrap();
        t.on_return(1, OpResult::Int(1)).unwrap();
        assert!(t.serialized_history().is_none(), "two increments both answered 1");

        let mut t = LinearizabilityTester::<u16, KvSpec>::new(KvSpec::default());
        t.on_invoke(0, Op::Set(k(), b"1".to_vec())).unwrap();
        t.on_return(0, OpResult::Ok).unwrap();
        t.on_invoke(1, Op::Get(k())).unwrap();
        t.on_return(1, OpResult::Value(None)).unwrap();
        assert!(t.serialized_history().is_none(), "a read after a completed write missed it");

        // Overlapping, either order is fine.
        let mut t = LinearizabilityTester::<u16, KvSpec>::new(KvSpec::default());
        t.on_invoke(0, Op::Set(k(), b"1".to_vec())).unwrap();
        t.on_invoke(1, Op::Get(k())).unwrap();
        t.on_return(1, OpResult::Value(None)).unwrap();
        t.on_return(0, OpResult::Ok).unwrap();
        assert!(t.serialized_history().is_some());
    }
}
