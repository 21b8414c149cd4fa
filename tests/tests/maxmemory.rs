//! Bounded memory end to end: `maxmemory` and `maxmemory-policy` set live
//! with CONFIG SET; a write load many times the bound keeps the server's
//! memory near it by evicting cached copies (INFO's `evicted_keys`), the
//! keys read often stay cached under `allkeys-lru`, an evicted key is read
//! back from the store, and `noeviction` refuses writes with Redis's OOM
//! error while reads and deletions go on.

use failgroup::resp::{self, Reply};
use failgroup_tests::{info_field, Cluster, Resp};

fn field(c: &mut Resp, section: &str, name: &str) -> u64 {
    info_field(c, section, name).unwrap_or_else(|| panic!("INFO {section} has {name}")).parse().expect(name)
}

/// SETs keys `from..to` with 100-byte values, 500 to a pipeline.
fn write(c: &mut Resp, from: u64, to: u64) {
    let value = vec![b'v'; 100];
    for start in (from..to).step_by(500) {
        let mut out = Vec::new();
        let end = (start + 500).min(to);
        for i in start..end {
            resp::encode_command(&mut out, &[b"SET", format!("{{m}}:{i}").as_bytes(), &value]);
        }
        c.send_raw(&out);
        for _ in start..end {
            assert_eq!(c.read(), Reply::Simple("OK".into()));
        }
    }
}

#[test]
fn maxmemory_bounds_the_cache_and_the_policy_shows() {
    let cluster = Cluster::start(24200, 1, 1);
    let mut c = Resp::connect(&cluster.addr("s1"));
    let base = field(&mut c, "memory", "used_memory");
    let rss0 = field(&mut c, "memory", "used_memory_rss");
    let bound = base + (6 << 20);
    let set = |c: &mut Resp, k: &str, v: &str| c.cmd(&[b"CONFIG", b"SET", k.as_bytes(), v.as_bytes()]);
    assert_eq!(set(&mut c, "maxmemory", &bound.to_string()), Reply::Simple("OK".into()));
    assert_eq!(set(&mut c, "maxmemory-policy", "allkeys-lru"), Reply::Simple("OK".into()));
    assert_eq!(info_field(&mut c, "memory", "maxmemory_policy").as_deref(), Some("allkeys-lru"));

    // 100 hot keys, read after every 5,000 writes, beside 300,000 writes
    // (some 60 MB of cached copies: ten times the bound's room).
    write(&mut c, 0, 100);
    let mut peak = 0;
    for round in 0..60 {
        write(&mut c, 100 + round * 5_000, 100 + (round + 1) * 5_000);
        for i in 0..100 {
            assert_eq!(c.run(&format!("GET {{m}}:{i}")), Reply::Bulk(Some(vec![b'v'; 100])));
        }
        peak = peak.max(field(&mut c, "memory", "used_memory"));
    }
    let evicted = field(&mut c, "stats", "evicted_keys");
    let rss = field(&mut c, "memory", "used_memory_rss");
    let keys = info_field(&mut c, "keyspace", "db0");
    println!("bound {bound}, peak used_memory {peak}, evicted {evicted}, RSS {rss0} -> {rss}, keys {keys:?}");
    assert!(evicted > 200_000, "most copies evicted: {evicted}");
    assert!(peak < bound + (bound - base) / 2, "used_memory {peak} stays near the bound {bound}");
    assert!(rss < rss0 + 4 * (bound - base), "RSS {rss} stays near the bound (from {rss0})");

    // The hot keys stayed: every read of them is served from memory.
    let hits = field(&mut c, "failgroup", "cache_hits");
    let misses = field(&mut c, "failgroup", "cache_misses");
    for i in 0..100 {
        c.run(&format!("GET {{m}}:{i}"));
    }
    let hot_hits = field(&mut c, "failgroup", "cache_hits") - hits;
    assert!(hot_hits >= 95, "LRU kept the hot keys: {hot_hits} of 100 from memory");
    // An early cold key was evicted: read from the store, value intact.
    assert_eq!(c.run("GET {m}:150"), Reply::Bulk(Some(vec![b'v'; 100])));
    assert!(field(&mut c, "failgroup", "cache_misses") > misses, "an evicted key is a miss");
    assert!(field(&mut c, "stats", "keyspace_hits") >= 6_100, "every GET found its key");

    // noeviction with memory over the bound: writes refused as Redis
    // refuses them; reads and deletions go on.
    assert_eq!(set(&mut c, "maxmemory-policy", "noeviction"), Reply::Simple("OK".into()));
    assert_eq!(set(&mut c, "maxmemory", "1"), Reply::Simple("OK".into()));
    let oom = Reply::Error("OOM command not allowed when used memory > 'maxmemory'.".into());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while c.run("SET {m}:new x") != oom {
        assert!(std::time::Instant::now() < deadline, "no OOM refusal");
    }
    assert_eq!(c.run("GET {m}:0"), Reply::Bulk(Some(vec![b'v'; 100])));
    assert_eq!(c.run("DEL {m}:1"), Reply::Int(1));
    assert_eq!(set(&mut c, "maxmemory", "0"), Reply::Simple("OK".into()));
    assert_eq!(c.run("SET {m}:new x"), Reply::Simple("OK".into()));
}

/// CONFIG SET's errors, as Redis 7.0 words them.
#[test]
fn config_set_errors_are_redis_errors() {
    let cluster = Cluster::start(24220, 1, 1);
    let mut c = Resp::connect(&cluster.addr("s1"));
    let err = |s: &str| Reply::Error(s.into());
    assert_eq!(c.run("CONFIG SET maxmemory"), err("ERR wrong number of arguments for 'config|set' command"));
    assert_eq!(
        c.run("CONFIG SET nonesuch 1"),
        err("ERR Unknown option or number of arguments for CONFIG SET - 'nonesuch'")
    );
    assert_eq!(
        c.run("CONFIG SET maxmemory lots"),
        err("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value")
    );
    assert_eq!(
        c.run("CONFIG SET maxmemory-policy lru"),
        err(
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the \
             following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, \
             allkeys-random, noeviction"
        )
    );
    assert_eq!(
        c.run("CONFIG SET maxmemory 1mb maxmemory 2mb"),
        err("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - duplicate parameter")
    );
    // All or nothing: a bad second parameter leaves the first unset.
    let bad = c.run("CONFIG SET maxmemory 1mb maxmemory-samples 0");
    assert!(
        matches!(&bad, Reply::Error(e) if e.ends_with("argument must be between 1 and 2147483647 inclusive")),
        "{bad:?}"
    );
    assert_eq!(info_field(&mut c, "memory", "maxmemory").as_deref(), Some("0"));
    assert_eq!(c.run("CONFIG SET MAXMEMORY 1MB maxmemory-samples 10"), Reply::Simple("OK".into()));
    assert_eq!(info_field(&mut c, "memory", "maxmemory").as_deref(), Some("1048576"));
}
