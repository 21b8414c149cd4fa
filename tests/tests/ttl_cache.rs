//! Keys with a time to live end to end: served from the server's memory
//! (INFO's cache_hits rise, cache_misses do not: no store read), and never after the store
//! expired them. The store is SQLite (or PostgreSQL where selected) on this
//! host, so its clock and the test's run at one rate.

use failgroup::resp::Reply;
use failgroup_tests::{info_field, Cluster, Resp};
use std::time::{Duration, Instant};

/// A counter of INFO's `# Failgroup` section: reads served from memory
/// (`cache_hits`) or from the store (`cache_misses`).
fn counter(c: &mut Resp, field: &str) -> u64 {
    info_field(c, "failgroup", field).expect(field).parse().expect("a number")
}

#[test]
fn a_key_with_a_ttl_is_served_from_memory_and_never_after_it_expires() {
    let cluster = Cluster::start(24100, 1, 1);
    let mut c = Resp::connect(&cluster.addr("s1"));
    let ttl = Duration::from_millis(3_000);
    let sent = Instant::now();
    assert_eq!(c.run("SET ttl:a v PX 3000"), Reply::Simple("OK".into()));
    let acked = Instant::now();
    let v = Reply::Bulk(Some(b"v".to_vec()));

    // Hits, from memory: no miss among them.
    let (hits, misses) = (counter(&mut c, "cache_hits"), counter(&mut c, "cache_misses"));
    for _ in 0..50 {
        assert_eq!(c.run("GET ttl:a"), v);
    }
    assert!(acked.elapsed() < Duration::from_millis(2_000), "50 GETs took too long to stay within the TTL");
    assert_eq!(counter(&mut c, "cache_hits") - hits, 50, "every GET a hit");
    assert_eq!(counter(&mut c, "cache_misses"), misses, "no GET went to the store");

    // Until and past its expiry: a GET answered before the earliest
    // moment the store could expire it sees it; one sent after the latest
    // sees nothing.
    let (mut before, mut after) = (0, 0);
    let end = acked + ttl + Duration::from_millis(1_000);
    while Instant::now() < end {
        let asked = Instant::now();
        let r = c.run("GET ttl:a");
        let answered = Instant::now();
        if answered < sent + ttl {
            assert_eq!(r, v, "the key was gone before its time to live");
            before += 1;
        }
        if asked > acked + ttl {
            assert_eq!(r, Reply::Bulk(None), "served {:?} after its expiry", asked - acked - ttl);
            after += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(before > 20 && after > 20, "reads on both sides of the expiry: {before} before, {after} after");
    assert!(counter(&mut c, "cache_misses") > misses, "near and past its expiry, the store answers");
}
