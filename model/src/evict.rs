//! Bounded memory: which cached copies a server drops when its memory is
//! over `maxmemory`, by Redis's `maxmemory-policy` (sampled, as Redis's
//! own LRU and LFU are approximations). Eviction drops only a server's
//! copy: the store keeps the data, and the next read of the key is a miss
//! answered from the store. Dropping a copy is safe at any moment (the
//! checker's `--evictions` drops any cached key at any step, through
//! [`ServerState::drop_cached`]).

use crate::server::{CacheEntry, CacheKey, ServerState};
use crate::types::{Slot, Time};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Redis's `maxmemory-policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Policy {
    /// Nothing is dropped; over the bound, writes are refused (OOM).
    #[default]
    #[serde(rename = "noeviction")]
    NoEviction,
    #[serde(rename = "allkeys-lru")]
    AllKeysLru,
    #[serde(rename = "allkeys-lfu")]
    AllKeysLfu,
    #[serde(rename = "allkeys-random")]
    AllKeysRandom,
    /// Among keys with a time to live only.
    #[serde(rename = "volatile-lru")]
    VolatileLru,
    #[serde(rename = "volatile-lfu")]
    VolatileLfu,
    #[serde(rename = "volatile-random")]
    VolatileRandom,
    /// The key with the nearest expiry among those sampled.
    #[serde(rename = "volatile-ttl")]
    VolatileTtl,
}

impl Policy {
    pub const ALL: [Policy; 8] = [
        Policy::NoEviction,
        Policy::AllKeysLru,
        Policy::AllKeysLfu,
        Policy::AllKeysRandom,
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::AllKeysLfu => "allkeys-lfu",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }

    /// What the cache records of each use of a key for this policy.
    pub fn usage(self) -> Usage {
        match self {
            Policy::AllKeysLru | Policy::VolatileLru => Usage::Lru,
            Policy::AllKeysLfu | Policy::VolatileLfu => Usage::Lfu,
            _ => Usage::Off,
        }
    }

    fn volatile(self) -> bool {
        matches!(self, Policy::VolatileLru | Policy::VolatileLfu | Policy::VolatileRandom | Policy::VolatileTtl)
    }
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Policy, String> {
        Policy::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
            format!("unknown maxmemory-policy {s:?} (one of: {})", names.join(", "))
        })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a cache entry's `used` field records on each hit: nothing (no
/// policy needs it, and the checker's states stay as they are), the last
/// use (LRU, seconds), or Redis's LFU counter (a logarithmic 8-bit count
/// and, above it, the minute it was last decayed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Usage {
    #[default]
    Off,
    Lru,
    Lfu,
}

/// Redis's LFU constants: a new key's count, and `lfu-log-factor`.
const LFU_INIT: u32 = 5;
const LFU_LOG_FACTOR: u32 = 10;

impl Usage {
    /// The `used` of an entry filled at `now`.
    pub fn fresh(self, now: Time) -> u32 {
        match self {
            Usage::Off => 0,
            Usage::Lru => seconds(now),
            Usage::Lfu => (minutes(now) << 8) | LFU_INIT,
        }
    }

    /// The `used` of an entry hit at `now`; `coin` is a number in 0..2^32
    /// (LFU counts a hit with a probability falling as the count grows).
    pub fn hit(self, used: u32, now: Time, coin: u32) -> u32 {
        match self {
            Usage::Off => used,
            Usage::Lru => seconds(now),
            Usage::Lfu => {
                let count = lfu_count(used, now);
                let base = count.saturating_sub(LFU_INIT);
                // Incremented with probability 1 / (base * factor + 1).
                let bumped = count < 255 && (coin as u64) * (base * LFU_LOG_FACTOR + 1) as u64 <= u32::MAX as u64;
                (minutes(now) << 8) | (count + bumped as u32)
            }
        }
    }
}

fn seconds(now: Time) -> u32 {
    (now.0 / 1000) as u32
}

fn minutes(now: Time) -> u32 {
    ((now.0 / 60_000) & 0xFFFF) as u32
}

/// An LFU count decayed by one for each minute since it was last decayed
/// (Redis's `lfu-decay-time` 1).
fn lfu_count(used: u32, now: Time) -> u32 {
    let (then, count) = (used >> 8, used & 0xFF);
    let elapsed = minutes(now).wrapping_sub(then) & 0xFFFF;
    count.saturating_sub(elapsed)
}

/// A small deterministic generator (xorshift64*), seeded by the runtime:
/// the core draws no randomness of its own.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Whether an entry is a candidate of `policy`: a volatile policy takes
/// entries that expire (keys with a time to live, temporary entries and
/// tombstones); every policy takes tombstones, which are never served.
fn candidate(policy: Policy, e: &CacheEntry) -> bool {
    !policy.volatile() || e.expires != Time::NEVER
}

/// How much `policy` wants an entry gone (larger: sooner).
fn badness(policy: Policy, e: &CacheEntry, now: Time) -> u64 {
    match policy {
        Policy::AllKeysLru | Policy::VolatileLru => seconds(now).wrapping_sub(e.used) as u64,
        Policy::AllKeysLfu | Policy::VolatileLfu => 255 - lfu_count(e.used, now) as u64,
        Policy::VolatileTtl => u64::MAX - e.expires.0,
        _ => 0,
    }
}

impl ServerState {
    /// Drops this server's copy of `key` of `slot`, if it has one.
    pub fn drop_cached(&mut self, slot: Slot, key: &CacheKey) -> bool {
        let Some(m) = self.cache.get_mut(&slot) else { return false };
        let gone = m.remove(key).is_some();
        if m.is_empty() {
            self.cache.remove(&slot);
        }
        gone
    }

    /// Drops up to `count` cached copies chosen by `policy`: each of the
    /// best of `samples` entries drawn at random (a random slot among those
    /// cached, then the first key at or after a random point of its
    /// order). Returns how many were dropped: fewer when nothing (or, for a
    /// volatile policy, nothing that expires) is left to drop.
    pub fn evict(&mut self, policy: Policy, samples: usize, count: usize, now: Time, seed: u64) -> usize {
        if policy == Policy::NoEviction {
            return 0;
        }
        let mut draw = Draw(seed | 1);
        let mut dropped = 0;
        'next: while dropped < count {
            let random = matches!(policy, Policy::AllKeysRandom | Policy::VolatileRandom);
            let want = if random { 1 } else { samples.max(1) };
            let mut best: Option<(u64, Slot, CacheKey)> = None;
            let mut seen = 0;
            // Draws that find no candidate count too: a volatile policy
            // over a cache of keys without one gives up.
            for _ in 0..want * 4 {
                if seen == want {
                    break;
                }
                let at = Slot((draw.next() % crate::topology::SLOTS as u64) as u16);
                let Some((slot, m)) = self.cache.range(at..).next().or_else(|| self.cache.iter().next()) else {
                    break 'next;
                };
                let from = CacheKey::at_hash(draw.next());
                let Some((k, e)) = m.range(from..).next().or_else(|| m.iter().next()) else { continue };
                if !candidate(policy, e) {
                    continue;
                }
                seen += 1;
                let b = badness(policy, e, now);
                if best.as_ref().is_none_or(|(worst, ..)| b > *worst) {
                    best = Some((b, *slot, k.clone()));
                }
            }
            match best {
                Some((_, slot, key)) => {
                    self.drop_cached(slot, &key);
                    dropped += 1;
                }
                None => break,
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_have_redis_names() {
        for p in Policy::ALL {
            assert_eq!(p.name().parse::<Policy>().unwrap(), p);
        }
        assert_eq!("ALLKEYS-LRU".parse::<Policy>().unwrap(), Policy::AllKeysLru);
        assert!("lru".parse::<Policy>().unwrap_err().contains("allkeys-lru"));
    }

    #[test]
    fn lfu_counts_grow_slowly_and_decay_by_the_minute() {
        let now = Time(3_600_000);
        let mut used = Usage::Lfu.fresh(now);
        assert_eq!(lfu_count(used, now), LFU_INIT);
        // A coin of 0 always increments; the largest never does past the start.
        used = Usage::Lfu.hit(used, now, 0);
        assert_eq!(lfu_count(used, now), LFU_INIT + 1);
        assert_eq!(lfu_count(Usage::Lfu.hit(used, now, u32::MAX), now), LFU_INIT + 1);
        assert_eq!(lfu_count(used, now.plus(2 * 60_000)), LFU_INIT - 1, "two minutes: two less");
    }
}
