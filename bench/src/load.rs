//! The fixed-rate load and what is made of its samples.
//!
//! Each worker has a schedule (operation i is due at `i / rate`) and
//! measures latency from when the operation was due, not from when it was
//! sent, so a stall counts against every operation it delayed (no
//! coordinated omission).

use failgroup::resp::{self, Reply};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Keys of the workload: `fo:0` .. `fo:{KEYS-1}`, all written before the run.
pub const KEYS: u64 = 1000;
/// Every WRITE_EVERY-th operation is a SET, the others are GETs.
const WRITE_EVERY: u64 = 10;

pub struct Plan {
    pub rate: u32,
    pub workers: u32,
    pub secs: f64,
    pub kill_at: f64,
    pub restart_at: f64,
}

impl Plan {
    pub fn validate(&self) -> Result<(), String> {
        if self.rate == 0 || self.workers == 0 || self.workers > 256 {
            return Err("--rate must be positive and --workers in 1..=256".into());
        }
        if !(0.0 < self.kill_at && self.kill_at < self.restart_at && self.restart_at < self.secs && self.secs <= 600.0)
        {
            return Err("need 0 < --kill-at < --restart-at < --secs <= 600".into());
        }
        Ok(())
    }
}

/// One system's way to run a GET or a SET.
pub trait Target: Send {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String>;
}

impl Target for failgroup::Client {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        failgroup::Client::get(self, key).map_err(|e| e.to_string())
    }
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        failgroup::Client::set(self, key, value).map_err(|e| e.to_string())
    }
}

/// A plain RESP connection, as any Redis client library would hold: an
/// error closes it and the next operation connects again.
pub struct Resp {
    addrs: Vec<String>,
    next: usize,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Resp {
    /// Connects to `addrs[first % len]`, moving on to the next on a failure.
    pub fn new(addrs: Vec<String>, first: usize) -> Resp {
        Resp { next: first % addrs.len(), addrs, conn: None, buf: Vec::new() }
    }

    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        let r = self.try_call(args);
        if r.is_err() {
            self.conn = None;
            self.next = (self.next + 1) % self.addrs.len();
        }
        match r {
            Ok(Reply::Error(e)) => Err(e),
            other => other,
        }
    }

    fn try_call(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        if self.conn.is_none() {
            let addr: std::net::SocketAddr = self.addrs[self.next].parse().map_err(|e| format!("{e}"))?;
            let s =
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| format!("connect: {e}"))?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
            self.conn = Some(s);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut out = Vec::new();
        resp::encode_command(&mut out, args);
        conn.write_all(&out).map_err(|e| format!("write: {e}"))?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((reply, _)) = resp::decode_reply(&self.buf).map_err(|e| e.0)? {
                return Ok(reply);
            }
            match conn.read(&mut chunk) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

impl Target for Resp {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self.call(&[b"GET", key])? {
            Reply::Bulk(v) => Ok(v),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        match self.call(&[b"SET", key, value])? {
            Reply::Simple(_) => Ok(()),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A GET found nothing, though every key was written before the run.
    Miss,
    Error,
}

#[derive(Clone, Copy)]
pub struct Sample {
    /// When the operation completed, µs since the run's start.
    pub done_us: u64,
    /// Latency from when it was due, µs.
    pub lat_us: u64,
    pub outcome: Outcome,
}

/// The benchmarks' generator (xorshift64): reproducible sequences from a
/// seed, for the keys a load reads and writes.
pub struct Xorshift(u64);

impl Xorshift {
    /// Any seed (zero is made odd: the generator would stay at zero).
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn key(i: u64) -> Vec<u8> {
    format!("fo:{i}").into_bytes()
}

/// Writes every key once, retrying each a few times (the system is healthy).
pub fn preload(t: &mut dyn Target) -> Result<(), String> {
    for i in 0..KEYS {
        let mut last = Ok(());
        for _ in 0..5 {
            last = t.set(&key(i), b"v0");
            if last.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        last.map_err(|e| format!("preloading {}: {e}", String::from_utf8_lossy(&key(i))))?;
    }
    Ok(())
}

/// Runs one worker's schedule from `start` for `secs`; the first error of
/// each distinct text is kept for the summary.
pub fn worker(
    mut t: Box<dyn Target>,
    start: Instant,
    secs: f64,
    per_sec: f64,
    seed: u64,
) -> (Vec<Sample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut rng = Xorshift::new(seed);
    let end = Duration::from_secs_f64(secs);
    // FAILGROUP_BENCH_SLOW_MS=N: each operation slower than N ms on stderr
    // (when it was due, its latency, its key and the key's slot), to find
    // what a spike in the CSV waited for.
    let slow_ms: Option<u64> = std::env::var("FAILGROUP_BENCH_SLOW_MS").ok().and_then(|v| v.parse().ok());
    for i in 0u64.. {
        let due = Duration::from_secs_f64(i as f64 / per_sec);
        if due >= end {
            break;
        }
        let now = start.elapsed();
        if due > now {
            std::thread::sleep(due - now);
        }
        let k = key(rng.next_u64() % KEYS);
        let outcome = if i % WRITE_EVERY == 0 {
            t.set(&k, format!("v{i}").as_bytes()).map(|()| Outcome::Ok)
        } else {
            t.get(&k).map(|v| if v.is_some() { Outcome::Ok } else { Outcome::Miss })
        };
        let done = start.elapsed();
        let outcome = outcome.unwrap_or_else(|e| {
            if errors.len() < 5 && !errors.contains(&e) {
                errors.push(e);
            }
            Outcome::Error
        });
        let lat_us = (done - due).as_micros() as u64;
        if slow_ms.is_some_and(|ms| lat_us > ms * 1000) {
            let slot = failgroup_model::key_slot(&k, failgroup_model::SLOTS).0;
            let op = if i % WRITE_EVERY == 0 { "SET" } else { "GET" };
            eprintln!(
                "  slow: due {} ms, {:.1} ms, {op} {} (slot {slot})",
                due.as_millis(),
                lat_us as f64 / 1000.0,
                String::from_utf8_lossy(&k)
            );
        }
        samples.push(Sample { done_us: done.as_micros() as u64, lat_us, outcome });
    }
    (samples, errors)
}

/// One 100 ms window of completions.
pub struct Bucket {
    pub start_ms: u64,
    pub ops: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: usize,
    pub misses: usize,
}

pub const BUCKET_MS: u64 = 100;

pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

pub fn buckets(samples: &[Sample], secs: f64) -> Vec<Bucket> {
    let n = (secs * 1000.0 / BUCKET_MS as f64).ceil() as usize + 1;
    let mut lats: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut errors = vec![0; n];
    let mut misses = vec![0; n];
    for s in samples {
        let b = ((s.done_us / 1000 / BUCKET_MS) as usize).min(n - 1);
        lats[b].push(s.lat_us);
        match s.outcome {
            Outcome::Error => errors[b] += 1,
            Outcome::Miss => misses[b] += 1,
            Outcome::Ok => {}
        }
    }
    lats.into_iter()
        .enumerate()
        .map(|(b, mut l)| {
            l.sort_unstable();
            Bucket {
                start_ms: b as u64 * BUCKET_MS,
                ops: l.len(),
                p50_ms: percentile(&l, 0.5),
                p99_ms: percentile(&l, 0.99),
                p999_ms: percentile(&l, 0.999),
                errors: errors[b],
                misses: misses[b],
            }
        })
        .collect()
}

/// What the summary says of one run.
pub struct Summary {
    pub ops: usize,
    pub errors: usize,
    pub misses: usize,
    pub baseline_p999_ms: f64,
    pub worst_ms: f64,
    /// From the kill until p99.9 stays within normal (see `recovered_after`).
    pub kill_recovery_ms: u64,
    /// From the restart until p99.9 stays within normal.
    pub restart_recovery_ms: u64,
}

/// "Normal": p99.9 at most 3x the baseline's and 5 ms above it; the time
/// from `from_ms` to the end of the last abnormal bucket before `to_ms`.
fn recovered_after(b: &[Bucket], baseline: f64, from_ms: u64, to_ms: u64) -> u64 {
    let limit = (3.0 * baseline).max(baseline + 5.0);
    b.iter()
        .filter(|x| x.start_ms + BUCKET_MS > from_ms && x.start_ms < to_ms)
        .filter(|x| x.p999_ms > limit || x.errors > 0)
        .map(|x| x.start_ms + BUCKET_MS - from_ms)
        .max()
        .unwrap_or(0)
}

/// A rolling restart's latency beside steady state's.
pub struct Rolling {
    /// p99.9 before the first restart (from 1 s on), ms.
    pub baseline_p999_ms: f64,
    /// p99.9 of every operation completed while the restarts went on.
    pub rolling_p999_ms: f64,
    /// The worst p99.9 of one second's operations in that time.
    pub worst_second_p999_ms: f64,
}

/// `samples` of a run whose restarts went on from `from_ms` to `to_ms`.
pub fn rolling(samples: &[Sample], from_ms: u64, to_ms: u64) -> Rolling {
    let lat = |lo_ms: u64, hi_ms: u64| {
        let mut v: Vec<u64> = samples
            .iter()
            .filter(|s| s.done_us >= lo_ms * 1000 && s.done_us < hi_ms * 1000)
            .map(|s| s.lat_us)
            .collect();
        v.sort_unstable();
        percentile(&v, 0.999)
    };
    let seconds = (from_ms..to_ms).step_by(1000).map(|t| lat(t, (t + 1000).min(to_ms)));
    Rolling {
        baseline_p999_ms: lat(1000, from_ms),
        rolling_p999_ms: lat(from_ms, to_ms),
        worst_second_p999_ms: seconds.fold(0.0, f64::max),
    }
}

pub fn summarize(samples: &[Sample], b: &[Bucket], plan: &Plan) -> Summary {
    let kill_ms = (plan.kill_at * 1000.0) as u64;
    let restart_ms = (plan.restart_at * 1000.0) as u64;
    let mut base: Vec<u64> =
        samples.iter().filter(|s| s.done_us >= 1_000_000 && s.done_us / 1000 < kill_ms).map(|s| s.lat_us).collect();
    base.sort_unstable();
    let baseline = percentile(&base, 0.999);
    Summary {
        ops: samples.len(),
        errors: samples.iter().filter(|s| s.outcome == Outcome::Error).count(),
        misses: samples.iter().filter(|s| s.outcome == Outcome::Miss).count(),
        baseline_p999_ms: baseline,
        worst_ms: samples.iter().map(|s| s.lat_us).max().unwrap_or(0) as f64 / 1000.0,
        kill_recovery_ms: recovered_after(b, baseline, kill_ms, restart_ms),
        restart_recovery_ms: recovered_after(b, baseline, restart_ms, u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(done_ms: u64, lat_ms: u64, outcome: Outcome) -> Sample {
        Sample { done_us: done_ms * 1000, lat_us: lat_ms * 1000, outcome }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=1000).map(|x| x * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 500.0);
        assert_eq!(percentile(&v, 0.99), 990.0);
        assert_eq!(percentile(&v, 0.999), 999.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn buckets_count_by_completion_and_recovery_ends_with_the_last_bad_window() {
        let plan = Plan { rate: 10, workers: 1, secs: 3.0, kill_at: 1.5, restart_at: 2.5 };
        let mut v: Vec<Sample> = (0..30).map(|i| s(i * 100 + 50, 1, Outcome::Ok)).collect();
        v.push(s(1_950, 400, Outcome::Ok)); // slow, 450 ms after the kill
        v.push(s(2_050, 1, Outcome::Error)); // an error in the next window
        v.push(s(2_150, 1, Outcome::Miss));
        let b = buckets(&v, plan.secs);
        assert_eq!(b[19].ops, 2);
        assert_eq!(b[19].p999_ms, 400.0);
        assert_eq!((b[20].errors, b[21].misses), (1, 1));
        let sum = summarize(&v, &b, &plan);
        assert_eq!((sum.ops, sum.errors, sum.misses), (33, 1, 1));
        assert_eq!(sum.baseline_p999_ms, 1.0);
        assert_eq!(sum.kill_recovery_ms, 2_100 - 1_500);
        assert_eq!(sum.restart_recovery_ms, 0);
    }

    #[test]
    fn a_rolling_restart_is_judged_by_its_worst_second() {
        let mut v: Vec<Sample> = (0..60).map(|i| s(i * 100 + 50, 1, Outcome::Ok)).collect();
        v.push(s(3_450, 9, Outcome::Ok)); // one slow operation in the second 3..4 s
        let r = rolling(&v, 2_000, 5_000);
        assert_eq!(r.baseline_p999_ms, 1.0);
        assert_eq!(r.worst_second_p999_ms, 9.0);
        assert_eq!(rolling(&v, 4_000, 6_000).worst_second_p999_ms, 1.0);
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(ok_plan().validate().is_ok());
        assert!(Plan { restart_at: 1.0, ..ok_plan() }.validate().is_err());
        assert!(Plan { rate: 0, ..ok_plan() }.validate().is_err());
        assert!(Plan { secs: 5.0, ..ok_plan() }.validate().is_err());
    }

    fn ok_plan() -> Plan {
        Plan { rate: 100, workers: 2, secs: 10.0, kill_at: 2.0, restart_at: 5.0 }
    }
}
