//! Optimistic transactions end to end: WATCH, MULTI, EXEC through a real
//! cluster, clients on different servers racing on one key. Versions are
//! the store's, so the model checker's specification does not cover WATCH
//! (`check/spec.rs`); these tests do. And FLUSHDB, a write of every slot
//! carried out as fenced deletes through each slot's server.

use failgroup::resp::Reply;
use failgroup_tests::{Cluster, Resp};
use std::time::{Duration, Instant};

/// One read-modify-write increment with WATCH: true if EXEC applied it,
/// false if a watched key changed (EXEC answered a null array).
fn watched_increment(c: &mut Resp, key: &str) -> bool {
    assert_eq!(c.run(&format!("WATCH {key}")), Reply::Simple("OK".into()));
    let n = match c.run(&format!("GET {key}")) {
        Reply::Bulk(Some(v)) => String::from_utf8(v).unwrap().parse::<i64>().unwrap(),
        Reply::Bulk(None) => 0,
        other => panic!("GET answered {other:?}"),
    };
    assert_eq!(c.run("MULTI"), Reply::Simple("OK".into()));
    assert_eq!(c.run(&format!("SET {key} {}", n + 1)), Reply::Simple("QUEUED".into()));
    match c.run("EXEC") {
        Reply::Array(Some(r)) => {
            assert_eq!(r, vec![Reply::Simple("OK".into())]);
            true
        }
        Reply::Array(None) => false,
        other => panic!("EXEC answered {other:?}"),
    }
}

/// Clients on three servers increment one counter by GET and SET under
/// WATCH, retrying when EXEC aborts. No increment is lost (the counter is
/// the number of EXECs that applied), and the race is real (some EXECs
/// aborted, so the guard was exercised both ways).
#[test]
fn watched_read_modify_write_loses_no_increment() {
    let cluster = Cluster::start(22100, 3, 1);
    let per_client = 25;
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = ["s1", "s2", "s3"]
        .into_iter()
        .map(|server| {
            let addr = cluster.addr(server);
            std::thread::spawn(move || {
                let mut c = Resp::connect(&addr);
                let (mut applied, mut aborted) = (0, 0);
                while applied < per_client {
                    assert!(Instant::now() < deadline, "{server}: {applied} increments in a minute");
                    if watched_increment(&mut c, "{race}counter") {
                        applied += 1;
                    } else {
                        aborted += 1;
                    }
                }
                aborted
            })
        })
        .collect();
    let aborted: u32 = workers.into_iter().map(|w| w.join().expect("a client")).sum();
    let mut c = Resp::connect(&cluster.addr("s1"));
    assert_eq!(c.run("GET {race}counter"), Reply::Bulk(Some(format!("{}", 3 * per_client).into_bytes())));
    println!("{} increments applied, {aborted} EXECs aborted by a watched write", 3 * per_client);
    assert!(aborted > 0, "three clients racing on one key never aborted an EXEC: the guard was not exercised");
}

/// A write through another server between WATCH and EXEC aborts the
/// transaction; with no write between, it applies; UNWATCH forgets.
#[test]
fn a_write_through_another_server_aborts_the_watching_transaction() {
    let cluster = Cluster::start(22120, 3, 1);
    let mut a = Resp::connect(&cluster.addr("s1"));
    let mut b = Resp::connect(&cluster.addr("s2"));
    let ok = || Reply::Simple("OK".into());
    for (i, interfere) in [true, false, true].into_iter().enumerate() {
        assert_eq!(a.run("WATCH {w}k {w}other"), ok());
        if interfere {
            assert_eq!(b.run(&format!("SET {{w}}k b{i}")), ok());
        }
        assert_eq!(a.run("MULTI"), ok());
        a.run(&format!("SET {{w}}k a{i}"));
        let r = a.run("EXEC");
        if interfere {
            assert_eq!(r, Reply::Array(None), "round {i}: the write between WATCH and EXEC aborts it");
            assert_eq!(a.run("GET {w}k"), Reply::Bulk(Some(format!("b{i}").into_bytes())));
        } else {
            assert_eq!(r, Reply::Array(Some(vec![ok()])), "round {i}: nothing changed, EXEC applies");
        }
    }
    assert_eq!(a.run("WATCH {w}k"), ok());
    assert_eq!(a.run("UNWATCH"), ok());
    assert_eq!(b.run("SET {w}k z"), ok());
    assert_eq!(a.run("MULTI"), ok());
    a.run("GET {w}k");
    assert_eq!(a.run("EXEC"), Reply::Array(Some(vec![Reply::Bulk(Some(b"z".to_vec()))])), "UNWATCH forgot the key");
}

/// FLUSHDB through one server empties the database and every server's
/// cache: keys of every owner, read (so cached) through every server
/// before, are absent through every server after; a write after it stays.
#[test]
fn flushdb_leaves_no_key_in_any_server_cache() {
    let cluster = Cluster::start(22140, 3, 1);
    let servers = ["s1", "s2", "s3"];
    let mut conns: Vec<Resp> = servers.iter().map(|s| Resp::connect(&cluster.addr(s))).collect();
    let keys: Vec<String> = (0..2500).map(|i| format!("user:{i}")).collect();
    for k in &keys {
        assert_eq!(conns[0].run(&format!("SET {k} v")), Reply::Simple("OK".into()));
    }
    conns[0].run("HSET obj f v");
    for c in conns.iter_mut() {
        for k in keys.iter().step_by(7) {
            assert_eq!(c.run(&format!("GET {k}")), Reply::Bulk(Some(b"v".to_vec())));
        }
    }
    assert_eq!(conns[1].run("FLUSHDB"), Reply::Simple("OK".into()));
    assert_eq!(conns[2].run("SET after 1"), Reply::Simple("OK".into()));
    for (s, c) in servers.iter().zip(conns.iter_mut()) {
        for k in keys.iter().step_by(7) {
            assert_eq!(c.run(&format!("GET {k}")), Reply::Bulk(None), "{s}: {k} after FLUSHDB");
        }
        assert_eq!(c.run("EXISTS obj"), Reply::Int(0), "{s}");
        assert_eq!(c.run("DBSIZE"), Reply::Int(1), "{s}: only the key written after");
    }
}
