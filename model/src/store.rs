//! The store interface the core speaks to (c2, c6), and an in-memory store.
//!
//! The database holds every key. Serving rights (leases with fencing epochs)
//! live beside the data, so a write fenced by a stale epoch is refused in the
//! same atomic step that would apply it. Writes carry their request id and
//! are applied at most once, whatever the retries and duplicates.
//!
//! The store keeps no lease time. A right's record counts its renewals; a
//! server that wants a right another process holds reads the record's
//! [`Stamp`], waits a whole lease on its own clock, and takes the right only
//! if the stamp is still the same (no renewal came meanwhile). The holder
//! trusts a right for less than a lease from the moment it sent the renewal,
//! so by then it has stopped trusting it, whatever the store's clock does.
//! The store's clock decides only when keys with a time to live expire.

use crate::config::Mode;
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

/// The error of an unfenced write in a `linearizable` cluster.
pub const UNFENCED: &str = "unfenced write refused: this cluster is linearizable";

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
    pub renewals: u64,
    pub released: bool,
    /// The store's time of the last grant or renewal: read only by the
    /// `StoreClockLeases` mutant, which times leases with it.
    pub renewed_at: Time,
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

/// A linearizable in-memory store: each `execute` is one atomic step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemStore {
    /// Value, version and expiry (store time) of each key.
    pub data: OrdMap<Key, (Value, u64, Option<Time>)>,
    pub rights: OrdMap<Slot, RightRecord>,
    /// Replies of applied writes, so a duplicate gets the same answer.
    pub applied: OrdMap<ReqId, StoreReply>,
    pub last_version: u64,
    /// In a `linearizable` cluster the store refuses unfenced writes.
    pub mode: Mode,
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
    pub fn new(mode: Mode, mutant: Option<Mutant>) -> MemStore {
        MemStore { mode, mutant, ..MemStore::default() }
    }

    fn holds(&self, from: Holder, slot: Slot, epoch: Epoch) -> bool {
        self.rights.get(&slot).is_some_and(|r| r.held_by(from, epoch))
    }

    /// Whether `from` may take `slot` (see [`may_take`]), or a mutant says so.
    fn grants(&self, slot: Slot, from: Holder, observed: Option<Stamp>, lease: u64, now: Time) -> bool {
        let current = self.rights.get(&slot);
        if may_take(current.map(|r| (r.holder, r.stamp(), r.released)), from, observed) {
            return true;
        }
        let r = current.expect("a held right has a record");
        match self.mutant {
            Some(Mutant::EarlyTakeover) => true,
            // The old design: the lease runs out on the store's clock.
            Some(Mutant::StoreClockLeases) => now >= r.renewed_at.plus(lease),
            Some(Mutant::SameNameTakesOver) => r.holder.server == from.server,
            _ => false,
        }
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
    fn execute(&mut self, from: Holder, op: StoreOp, now: Time) -> StoreReply {
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
                match fence {
                    Some(epoch) if self.mutant != Some(Mutant::NoFencing) && !self.holds(from, slot, epoch) => {
                        return StoreReply::Fenced;
                    }
                    None if self.mode == Mode::Linearizable => {
                        return StoreReply::Rejected(ErrorKind::Store(UNFENCED.into()));
                    }
                    _ => {}
                }
                let reply = self.write(key, write, now);
                self.applied.insert(req, reply.clone());
                reply
            }
            StoreOp::Acquire { slots, lease } => {
                let (mut granted, mut held) = (Vec::new(), Vec::new());
                for (slot, observed) in slots {
                    if self.grants(slot, from, observed, lease, now) {
                        // Always a new epoch, even for the holder itself, so
                        // writes it sent under the old one are fenced.
                        let epoch = Epoch(self.rights.get(&slot).map_or(0, |r| r.epoch.0) + 1);
                        let renewed_at = if self.mutant == Some(Mutant::StoreClockLeases) { now } else { Time::ZERO };
                        let record = RightRecord { holder: from, epoch, renewals: 0, released: false, renewed_at };
                        self.rights.insert(slot, record);
                        granted.push((slot, epoch));
                    } else {
                        let r = &self.rights[&slot];
                        held.push((slot, r.holder.server, r.stamp()));
                    }
                }
                StoreReply::Acquired { granted, held }
            }
            StoreOp::Renew { rights, lease: _ } => {
                let (mut kept, mut lost) = (Vec::new(), Vec::new());
                for (slot, epoch) in rights {
                    if self.holds(from, slot, epoch) {
                        // Kept only for the mutant that reads it: a time in
                        // every record would multiply the checker's states.
                        let stamp_time = self.mutant == Some(Mutant::StoreClockLeases);
                        let r = &mut self.rights[&slot];
                        r.renewals += 1;
                        r.renewed_at = if stamp_time { now } else { Time::ZERO };
                        kept.push((slot, epoch));
                    } else {
                        lost.push((slot, epoch));
                    }
                }
                StoreReply::Renewed { kept, lost }
            }
            StoreOp::Release { rights } => {
                for (slot, epoch) in rights {
                    if self.holds(from, slot, epoch) {
                        self.rights[&slot].released = true;
                    }
                }
                StoreReply::Released
            }
        }
    }
}
