//! The store interface the core speaks to (c2, c6), and an in-memory store.
//!
//! The database holds every key. Serving rights (leases with fencing epochs)
//! live beside the data, so a write fenced by a stale epoch is refused in the
//! same atomic step that would apply it. Writes carry their request id and
//! are applied at most once, whatever the retries and duplicates.

use crate::config::Mutant;
use crate::types::{Epoch, ErrorKind, Key, OpResult, ReqId, ServerId, SetCond, SetOpts, Slot, Time, Value};
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
}

/// A command from a server to the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StoreOp {
    /// Read a key and its version.
    Read { key: Key },
    /// A key's remaining time to live (PTTL).
    Ttl { key: Key },
    /// Write a key; with `fence`, only if the sender holds the slot's right
    /// at that epoch and it has not expired.
    Write { slot: Slot, fence: Option<Epoch>, req: ReqId, key: Key, write: Write },
    /// Take the rights of free or expired slots, each with a new epoch.
    Acquire { slots: Vec<Slot>, lease: u64 },
    /// Extend rights still held at the given epochs.
    Renew { rights: Vec<(Slot, Epoch)>, lease: u64 },
    /// Give rights up (hand-back).
    Release { rights: Vec<(Slot, Epoch)> },
}

/// The store's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StoreReply {
    /// `version` is 0 for an absent key; `expiring`: the key has a time to
    /// live, so it must not be cached.
    Read {
        value: Option<Value>,
        version: u64,
        expiring: bool,
    },
    /// The write is committed; `value` is the key's value after it.
    Written {
        version: u64,
        value: Option<Value>,
        expiring: bool,
        result: OpResult,
    },
    /// Milliseconds to live, -1 without expiry, -2 absent.
    Ttl(i64),
    /// Not applied: the write is invalid (INCR of a non-integer).
    Rejected(ErrorKind),
    /// Not applied: the sender does not hold the right at that epoch.
    Fenced,
    Acquired {
        granted: Vec<(Slot, Epoch)>,
        held: Vec<(Slot, ServerId)>,
    },
    Renewed {
        kept: Vec<(Slot, Epoch)>,
        lost: Vec<(Slot, Epoch)>,
    },
    Released,
    /// The store could not carry the command out.
    Failed(String),
}

/// What a store does. The runtime's databases implement it; the core only
/// emits [`StoreOp`]s and consumes [`StoreReply`]s.
pub trait Store {
    /// Carries out one command atomically. `now` is the store's clock.
    fn execute(&mut self, from: ServerId, op: StoreOp, now: Time) -> StoreReply;
}

/// A slot's serving right as the store records it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RightRecord {
    pub holder: ServerId,
    pub epoch: Epoch,
    pub expires: Time,
}

/// A linearizable in-memory store: each `execute` is one atomic step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemStore {
    /// Value, version and expiry (store time) of each key.
    pub data: OrdMap<Key, (Value, u64, Option<Time>)>,
    pub rights: OrdMap<Slot, RightRecord>,
    /// Replies of applied writes, so a duplicate gets the same answer.
    pub applied: OrdMap<ReqId, StoreReply>,
    pub last_version: u64,
    /// A deliberate bug (model checker only).
    pub mutant: Option<Mutant>,
}

fn as_int(v: Option<&Value>) -> Option<i64> {
    match v {
        None => Some(0),
        Some(v) => std::str::from_utf8(v).ok()?.parse().ok(),
    }
}

impl MemStore {
    pub fn new(mutant: Option<Mutant>) -> MemStore {
        MemStore { mutant, ..MemStore::default() }
    }

    fn holds(&self, from: ServerId, slot: Slot, epoch: Epoch, now: Time) -> bool {
        matches!(self.rights.get(&slot), Some(r) if r.holder == from && r.epoch == epoch && now < r.expires)
    }

    /// A key as it is at `now`: expired keys are absent.
    fn live(&self, key: &[u8], now: Time) -> Option<&(Value, u64, Option<Time>)> {
        self.data.get(key).filter(|(_, _, exp)| exp.is_none_or(|t| now < t))
    }

    fn current(&self, key: &[u8], now: Time) -> (Option<Value>, u64, bool) {
        match self.live(key, now) {
            Some((v, ver, exp)) => (Some(v.clone()), *ver, exp.is_some()),
            None => (None, 0, false),
        }
    }

    fn write(&mut self, key: Key, write: Write, now: Time) -> StoreReply {
        let old = self.live(&key, now).map(|(v, _, e)| (v.clone(), *e));
        match apply_write(old, write, now) {
            Applied::Write { value, expiry, result } => {
                self.last_version += 1;
                let version = self.last_version;
                match &value {
                    Some(v) => self.data.insert(key, (v.clone(), version, expiry)),
                    None => self.data.remove(&key),
                };
                StoreReply::Written { version, value, expiring: expiry.is_some(), result }
            }
            Applied::NotSet => {
                let (value, version, expiring) = self.current(&key, now);
                StoreReply::Written { version, value, expiring, result: OpResult::NotSet }
            }
            Applied::Rejected(e) => StoreReply::Rejected(e),
        }
    }
}

/// What a write makes of a key, whatever the store: every store
/// implementation applies writes through this one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The key's new value (`None`: deleted) and expiry, and the result.
    Write { value: Option<Value>, expiry: Option<Time>, result: OpResult },
    /// An NX/XX condition did not hold: nothing changes.
    NotSet,
    /// Not applied: INCR of a non-integer, or an overflow.
    Rejected(ErrorKind),
}

/// Applies `write` to a key that is `old` (its value and expiry; `None`:
/// absent or expired) at the store's `now`.
pub fn apply_write(old: Option<(Value, Option<Time>)>, write: Write, now: Time) -> Applied {
    let exists = old.is_some();
    let (old_value, old_expiry) = match old {
        Some((v, e)) => (Some(v), e),
        None => (None, None),
    };
    let (value, expiry, result) = match write {
        Write::Set(v) => (Some(v), None, OpResult::Ok),
        Write::SetWith(v, opts) => {
            let applies = match opts.cond {
                SetCond::Always => true,
                SetCond::IfAbsent => !exists,
                SetCond::IfPresent => exists,
            };
            if !applies {
                return Applied::NotSet;
            }
            (Some(v), opts.ttl_ms.map(|ms| now.plus(ms)), OpResult::Ok)
        }
        Write::Del => (None, None, OpResult::Deleted(exists as u8)),
        Write::Incr(d) => match as_int(old_value.as_ref()).and_then(|n| n.checked_add(d)) {
            Some(n) => (Some(n.to_string().into_bytes()), old_expiry, OpResult::Int(n)),
            None => return Applied::Rejected(ErrorKind::NotInteger),
        },
        Write::Expire(_) if !exists => (None, None, OpResult::Int(0)),
        Write::Expire(ms) if ms <= 0 => (None, None, OpResult::Int(1)),
        Write::Expire(ms) => (old_value, Some(now.plus(ms as u64)), OpResult::Int(1)),
    };
    Applied::Write { value, expiry, result }
}

impl Store for MemStore {
    fn execute(&mut self, from: ServerId, op: StoreOp, now: Time) -> StoreReply {
        match op {
            StoreOp::Read { key } => {
                let (value, version, expiring) = self.current(&key, now);
                StoreReply::Read { value, version, expiring }
            }
            StoreOp::Ttl { key } => StoreReply::Ttl(match self.live(&key, now) {
                None => -2,
                Some((_, _, None)) => -1,
                Some((_, _, Some(t))) => t.since(now) as i64,
            }),
            StoreOp::Write { slot, fence, req, key, write } => {
                if let Some(done) = self.applied.get(&req) {
                    // A duplicate or a retry: applied at most once. The client
                    // gets the same answer, but a cache must get the key as
                    // it is now: later writes may have followed this one.
                    return match done {
                        StoreReply::Written { result, .. } => {
                            let (value, version, expiring) = self.current(&key, now);
                            StoreReply::Written { version, value, expiring, result: result.clone() }
                        }
                        other => other.clone(),
                    };
                }
                if let Some(epoch) = fence {
                    if self.mutant != Some(Mutant::NoFencing) && !self.holds(from, slot, epoch, now) {
                        return StoreReply::Fenced;
                    }
                }
                let reply = self.write(key, write, now);
                self.applied.insert(req, reply.clone());
                reply
            }
            StoreOp::Acquire { slots, lease } => {
                let (mut granted, mut held) = (Vec::new(), Vec::new());
                for slot in slots {
                    let current = self.rights.get(&slot).cloned();
                    match current {
                        Some(r)
                            if r.holder != from && now < r.expires && self.mutant != Some(Mutant::EarlyTakeover) =>
                        {
                            held.push((slot, r.holder))
                        }
                        _ => {
                            // Always a new epoch, even for the holder itself, so
                            // writes it sent under the old one are fenced.
                            let epoch = Epoch(current.map_or(0, |r| r.epoch.0) + 1);
                            let expires = now.plus(lease);
                            self.rights.insert(slot, RightRecord { holder: from, epoch, expires });
                            granted.push((slot, epoch));
                        }
                    }
                }
                StoreReply::Acquired { granted, held }
            }
            StoreOp::Renew { rights, lease } => {
                let (mut kept, mut lost) = (Vec::new(), Vec::new());
                for (slot, epoch) in rights {
                    if self.holds(from, slot, epoch, now) {
                        self.rights[&slot].expires = now.plus(lease);
                        kept.push((slot, epoch));
                    } else {
                        lost.push((slot, epoch));
                    }
                }
                StoreReply::Renewed { kept, lost }
            }
            StoreOp::Release { rights } => {
                for (slot, epoch) in rights {
                    if self.holds(from, slot, epoch, now) {
                        self.rights[&slot].expires = now;
                    }
                }
                StoreReply::Released
            }
        }
    }
}
