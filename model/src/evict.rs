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
    /// best of `samples` entries drawn at random (a cached slot in
    /// proportion to its keys, then the first key at or after a random
    /// point of its order). Returns how many were dropped: fewer when
    /// nothing (or, for a volatile policy, nothing that expires) is left to
    /// drop.
    pub fn evict(&mut self, policy: Policy, samples: usize, count: usize, now: Time, seed: u64) -> usize {
        if policy == Policy::NoEviction {
            return 0;
        }
        // Mixed first: a small seed would start xorshift in a corner.
        let mut draw = Draw(crate::bytes::mix(seed) | 1);
        // The cached slots with their keys counted up to each: a draw
        // below the total picks a slot in proportion to its keys (counts
        // taken once per call; copies dropped meanwhile skew them little).
        let mut total = 0u64;
        let slots: Vec<(u64, Slot)> = self
            .cache
            .iter()
            .map(|(s, m)| {
                total += m.len() as u64;
                (total, *s)
            })
            .collect();
        let mut dropped = 0;
        'next: while dropped < count {
            let random = matches!(policy, Policy::AllKeysRandom | Policy::VolatileRandom);
            let want = if random { 1 } else { samples.max(1) };
            let mut best: Option<(u64, Slot, CacheKey)> = None;
            let mut seen = 0;
            // Draws that find no candidate count too: a volatile policy
            // over a cache of keys without one gives up after 64 draws
            // more than it wants (where one key in ten has a time to live,
            // all 64 miss one time in 850).
            for _ in 0..want + 64 {
                if seen == want {
                    break;
                }
                if total == 0 || self.cache.is_empty() {
                    break 'next;
                }
                let r = draw.next() % total;
                let (_, at) = slots[slots.partition_point(|(upto, _)| *upto <= r)];
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

    /// A cache of `n` keys in one slot: even keys used at second 0 and
    /// without a time to live, odd keys used at second 100 and expiring at
    /// 1,000 s + their number.
    fn cache(n: u64) -> ServerState {
        let mut st = ServerState::default();
        for i in 0..n {
            let e = CacheEntry {
                value: None,
                version: 1,
                expires: if i % 2 == 0 { Time::NEVER } else { Time(1_000_000 + i) },
                used: if i % 2 == 0 { 0 } else { 100 },
            };
            st.cache.entry(Slot(3)).or_default().insert(CacheKey::new(&i.to_be_bytes()), e);
        }
        st
    }

    fn left(st: &ServerState, odd: bool) -> usize {
        st.cache.values().flat_map(|m| m.values()).filter(|e| (e.expires != Time::NEVER) == odd).count()
    }

    #[test]
    fn each_policy_drops_what_it_should() {
        let now = Time(200_000);
        // LRU among all: the keys idle longest (the even ones) go first.
        let mut st = cache(1_000);
        assert_eq!(st.evict(Policy::AllKeysLru, 5, 400, now, 7), 400);
        // Sampled, as Redis's: most (here at least three in four) of the
        // copies dropped are the idler ones.
        assert!(left(&st, false) <= 200 && left(&st, true) >= 400, "{} even left", left(&st, false));
        // Volatile: only keys that expire, and nothing when none does.
        let mut st = cache(1_000);
        assert_eq!(st.evict(Policy::VolatileRandom, 5, 300, now, 7), 300);
        assert_eq!((left(&st, false), left(&st, true)), (500, 200));
        let mut st = cache(1_000);
        let kept = st.cache[&Slot(3)].clone().into_iter().filter(|(_, e)| e.expires == Time::NEVER).collect();
        st.cache.insert(Slot(3), kept);
        assert_eq!(st.evict(Policy::VolatileLru, 5, 10, now, 7), 0, "no key with a time to live");
        // Slots far apart are both drawn from.
        let mut st = cache(10);
        let far = st.cache[&Slot(3)].clone();
        st.cache.insert(Slot(9_000), far);
        st.evict(Policy::AllKeysRandom, 5, 10, now, 7);
        assert!(st.cache.values().all(|m| m.len() < 10), "both slots lost keys");
        // volatile-ttl: the nearest expiries among those sampled.
        let mut st = cache(1_000);
        st.evict(Policy::VolatileTtl, 10, 250, now, 7);
        let soonest: Vec<u64> = st.cache.values().flat_map(|m| m.values()).map(|e| e.expires.0).collect();
        let late = soonest.iter().filter(|t| (1_000_500..u64::MAX).contains(*t)).count();
        assert!(late > 200, "later expiries kept: {late} of 250");
        // noeviction drops nothing; everything can go, then nothing is left.
        assert_eq!(cache(10).evict(Policy::NoEviction, 5, 10, now, 7), 0);
        let mut st = cache(10);
        assert_eq!(st.evict(Policy::AllKeysRandom, 5, 100, now, 7), 10);
        assert!(st.cache.is_empty(), "emptied slots are removed");
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
