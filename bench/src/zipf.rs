//! `zipf`: a cache's hit ratio under a skewed read load, side by side. A
//! key space of `keys` keys is read with Zipf-distributed popularity
//! (skew `skew`) through a cache that holds about a tenth of it: a
//! redis-server with `maxmemory` and a policy, used cache-aside (a GET
//! that misses is followed by the SET an application would make from its
//! database), and one failgroup server with the same room and policy,
//! whose store holds every key (a miss is read from the store by the
//! server itself). Both bounds are each system's memory at start plus the
//! bytes redis-server needs for a tenth of the keys. Prints each system's
//! hit ratio, reads/s and store reads/s.

use crate::load::Xorshift;
use failgroup::resp::{self, Reply};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// The workload.
pub struct Plan {
    pub keys: u64,
    pub reads: u64,
    pub skew: f64,
    pub value: usize,
    pub policy: String,
}

/// One RESP connection, pipelining.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: &str) -> Result<Conn, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
        Ok(Conn { s, buf: Vec::new() })
    }

    /// Sends every command, then reads one reply each.
    fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, String> {
        let mut out = Vec::new();
        for c in cmds {
            let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            resp::encode_command(&mut out, &args);
        }
        self.s.write_all(&out).map_err(|e| e.to_string())?;
        let mut replies = Vec::with_capacity(cmds.len());
        while replies.len() < cmds.len() {
            match resp::decode_reply(&self.buf).map_err(|e| format!("{e:?}"))? {
                Some((r, used)) => {
                    self.buf.drain(..used);
                    replies.push(r);
                }
                None => {
                    let mut chunk = [0u8; 65536];
                    let n = self.s.read(&mut chunk).map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("connection closed".into());
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
        Ok(replies)
    }

    fn run(&mut self, args: &[&str]) -> Result<Reply, String> {
        let cmd = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        Ok(self.pipeline(&[cmd])?.remove(0))
    }

    /// A numeric field of INFO.
    fn info(&mut self, section: &str, field: &str) -> Result<u64, String> {
        let Reply::Bulk(Some(text)) = self.run(&["INFO", section])? else { return Err("INFO".into()) };
        String::from_utf8_lossy(&text)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).and_then(|v| v.trim().parse().ok()))
            .ok_or_else(|| format!("INFO {section} has no {field}"))
    }

    /// SETs keys `range` (pipelined).
    fn load(&mut self, range: std::ops::Range<u64>, value: &[u8]) -> Result<(), String> {
        let keys: Vec<u64> = range.collect();
        for chunk in keys.chunks(500) {
            let cmds: Vec<Vec<Vec<u8>>> = chunk.iter().map(|k| set(*k, value)).collect();
            self.pipeline(&cmds)?;
        }
        Ok(())
    }
}

fn key(k: u64) -> Vec<u8> {
    format!("{{z}}:{k}").into_bytes()
}

fn set(k: u64, value: &[u8]) -> Vec<Vec<u8>> {
    vec![b"SET".to_vec(), key(k), value.to_vec()]
}

/// Zipf-distributed key numbers: the CDF over `n` ranks, drawn from by
/// binary search with a xorshift generator (a fixed seed: both systems read
/// the same sequence).
struct Zipf {
    cdf: Vec<f64>,
    rng: Xorshift,
}

impl Zipf {
    fn new(n: u64, skew: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / (rank as f64).powf(skew);
            cdf.push(sum);
        }
        cdf.iter_mut().for_each(|c| *c /= sum);
        Zipf { cdf, rng: Xorshift::new(0x9E37_79B9_7F4A_7C15) }
    }

    fn next(&mut self) -> u64 {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        // Ranks scattered over the key numbers, so the popular keys are
        // not the ones loaded first.
        let rank = self.cdf.partition_point(|c| *c < u) as u64;
        rank.wrapping_mul(0x9E37_79B9) % self.cdf.len() as u64
    }
}

/// What one system did.
struct Outcome {
    hit_ratio: f64,
    reads_per_s: f64,
    store_reads_per_s: f64,
}

/// Runs the workload on redis-server at `redis` and failgroup's one server
/// at `failgroup`, and prints the table.
pub fn run(plan: &Plan, redis: &str, failgroup: &str) -> Result<(), String> {
    let value = vec![b'v'; plan.value];
    // The room: what redis-server uses for a tenth of the keys.
    let mut r = Conn::open(redis)?;
    r.run(&["FLUSHALL"])?;
    r.run(&["CONFIG", "SET", "maxmemory", "0"])?;
    let base = r.info("memory", "used_memory")?;
    r.load(0..plan.keys / 10, &value)?;
    let room = r.info("memory", "used_memory")?.saturating_sub(base);
    r.run(&["FLUSHALL"])?;
    let rows = [
        ("redis", redis_side(plan, &mut r, base + room, &value)?),
        ("failgroup", {
            let mut f = Conn::open(failgroup)?;
            failgroup_side(plan, &mut f, room, &value)?
        }),
    ];
    println!(
        "# Zipf reads (skew {}), {} keys of {} bytes, room for a tenth of them ({} bytes), {}, {} reads",
        plan.skew, plan.keys, plan.value, room, plan.policy, plan.reads
    );
    println!("{:<10} {:>9} {:>12} {:>16}", "system", "hit ratio", "reads/s", "store reads/s");
    for (name, o) in &rows {
        println!("{name:<10} {:>9.3} {:>12.0} {:>16.0}", o.hit_ratio, o.reads_per_s, o.store_reads_per_s);
    }
    Ok(())
}

/// Cache-aside on redis-server: GETs in pipelines of 16, then the SETs of
/// those that missed; a hit is a key found (`keyspace_hits`).
fn redis_side(plan: &Plan, r: &mut Conn, max: u64, value: &[u8]) -> Result<Outcome, String> {
    r.run(&["CONFIG", "SET", "maxmemory", &max.to_string()])?;
    r.run(&["CONFIG", "SET", "maxmemory-policy", &plan.policy])?;
    let counters = ("stats", "keyspace_hits", "keyspace_misses");
    let outcome = timed(plan, r, counters, |r, batch| {
        let gets: Vec<Vec<Vec<u8>>> = batch.iter().map(|k| vec![b"GET".to_vec(), key(*k)]).collect();
        let replies = r.pipeline(&gets)?;
        let sets: Vec<Vec<Vec<u8>>> =
            batch.iter().zip(replies).filter(|(_, r)| *r == Reply::Bulk(None)).map(|(k, _)| set(*k, value)).collect();
        if !sets.is_empty() {
            r.pipeline(&sets)?;
        }
        Ok(())
    })?;
    r.run(&["CONFIG", "SET", "maxmemory", "0"])?;
    Ok(outcome)
}

/// failgroup: every key in the store first (written through the server,
/// with the bound already set), then GETs in pipelines of 16; a hit is a
/// read served from memory (`cache_hits`).
fn failgroup_side(plan: &Plan, f: &mut Conn, room: u64, value: &[u8]) -> Result<Outcome, String> {
    f.run(&["CONFIG", "SET", "maxmemory", "0"])?;
    let base = f.info("memory", "used_memory")?;
    f.run(&["CONFIG", "SET", "maxmemory", &(base + room).to_string()])?;
    f.run(&["CONFIG", "SET", "maxmemory-policy", &plan.policy])?;
    f.load(0..plan.keys, value)?;
    let outcome = timed(plan, f, ("failgroup", "cache_hits", "cache_misses"), |f, batch| {
        let gets: Vec<Vec<Vec<u8>>> = batch.iter().map(|k| vec![b"GET".to_vec(), key(*k)]).collect();
        let replies = f.pipeline(&gets)?;
        match replies.iter().all(|r| matches!(r, Reply::Bulk(Some(_)))) {
            true => Ok(()),
            false => Err(format!("failgroup: a GET did not find its key: {replies:?}")),
        }
    })?;
    let evicted = f.info("stats", "evicted_keys")?;
    f.run(&["CONFIG", "SET", "maxmemory", "0"])?;
    eprintln!("failgroup: {evicted} copies evicted in all");
    Ok(outcome)
}

/// Zipf-distributed reads by `batch` (16 keys a call): a fifth of
/// `plan.reads` to warm the cache, then `plan.reads` timed, with the INFO
/// counters (`section`, hits, misses) read around them.
fn timed(
    plan: &Plan,
    c: &mut Conn,
    (section, hits, misses): (&str, &str, &str),
    mut batch: impl FnMut(&mut Conn, &[u64]) -> Result<(), String>,
) -> Result<Outcome, String> {
    // The same sequence for every system: a fixed seed.
    let mut zipf = Zipf::new(plan.keys, plan.skew);
    let mut reads = |c: &mut Conn, n: u64| {
        let mut done = 0;
        while done < n {
            let keys: Vec<u64> = (0..16.min(n - done)).map(|_| zipf.next()).collect();
            batch(c, &keys)?;
            done += keys.len() as u64;
        }
        Ok::<(), String>(())
    };
    reads(c, plan.reads / 5)?;
    let (h0, m0) = (c.info(section, hits)?, c.info(section, misses)?);
    let start = Instant::now();
    reads(c, plan.reads)?;
    let secs = start.elapsed().as_secs_f64();
    let (h, m) = (c.info(section, hits)? - h0, c.info(section, misses)? - m0);
    Ok(Outcome {
        hit_ratio: h as f64 / (h + m).max(1) as f64,
        reads_per_s: plan.reads as f64 / secs,
        store_reads_per_s: m as f64 / secs,
    })
}
