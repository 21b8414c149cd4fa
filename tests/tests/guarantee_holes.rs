//! Regression tests for the holes a review found in the no-stale-read
//! guarantee (specs/faults.md, "Holes closed"). Each one failed on the code
//! before its fix; each runs real processes on loopback.

use failgroup::resp::Reply;
use failgroup_tests::{bulk, libfaketime, ok, Cluster, Resp};
use std::time::{Duration, Instant};

const ROUNDS: usize = 4;

/// Hole 1: a late peer reply answered the wrong request. s1 forwards a GET
/// of `{fa}ttl` (a key with a time to live, so never cached) to its owner
/// s2, which is stopped, so the GET waits in s2's socket; s1 is killed and
/// restarted and forwards a GET of `{fa}newN` (a key never written) under
/// the same operation number; s2 resumes and answers both (its store slow,
/// so both wait there), the first GET first. Before the fix s1 answered the
/// second GET with the first one's value.
#[test]
fn a_late_peer_reply_never_answers_another_request() {
    let mut cluster = Cluster::with_config(23400, 3, "", "");
    let s1 = cluster.addr("s1");
    let mut c = Resp::connect(&cluster.addr("s2"));
    assert_eq!(c.run("SET {fa}ttl1 old EX 1000"), ok());
    // Both keys live in `fa`'s slot, which s2 owns; s1 forwards them. A
    // fresh s1 numbers its operations from the start, so each GET is
    // operation 0 of its incarnation.
    for round in 0..ROUNDS {
        cluster.kill9("s1");
        cluster.restart("s1");
        cluster.pause("s2");
        let mut old = Resp::connect(&s1);
        old.send_raw(b"*2\r\n$3\r\nGET\r\n$8\r\n{fa}ttl1\r\n");
        // The forward leaves s1 (it is in s2's receive buffer) before s1 dies.
        std::thread::sleep(Duration::from_millis(200));
        drop(old);
        cluster.kill9("s1");
        cluster.restart("s1");
        let mut new = Resp::connect(&s1);
        new.send_raw(format!("*2\r\n$3\r\nGET\r\n$8\r\n{{fa}}new{round}\r\n").as_bytes());
        std::thread::sleep(Duration::from_millis(200));
        // A slow store: s2 takes both requests before either reply.
        let (store, dir) = (cluster.store.clone(), cluster.dir.clone());
        let slow = std::thread::spawn(move || store.hold_write_lock(&dir, Duration::from_millis(800)));
        std::thread::sleep(Duration::from_millis(100));
        cluster.signal("s2", "CONT");
        slow.join().expect("the store's lock");
        let got = new.read();
        assert_eq!(got, Reply::Bulk(None), "round {round}: a GET of a key never written answered {got:?}");
    }
}

/// Hole 4: the node protocol was open without a secret. A stranger (a
/// loopback address that is not in the topology) said hello as the master
/// and told s1 that s2 was offline, or as a peer and had s1 run its
/// requests. Now, without a secret, node connections that claim to be the
/// master or a server are accepted only from the topology's addresses, and
/// a peer must name a server of the cluster.
#[test]
fn strangers_cannot_speak_for_the_master_or_a_server() {
    use failgroup::net::wire::{Msg, Peer};
    use failgroup_model::{Forwarded, Liveness, MasterMsg, Op, ReqId, ServerId, Version};
    use failgroup_tests::node_hello;
    let cluster = Cluster::with_config(23500, 3, "", "");
    let s1 = cluster.addr("s1");
    let stranger: std::net::Ipv4Addr = "127.0.0.2".parse().unwrap();
    let here: std::net::Ipv4Addr = "127.0.0.1".parse().unwrap();
    let refused = |m: &Option<Msg>| matches!(m, Some(Msg::Refused(_)) | None);
    let (mut as_master, answer) = node_hello(stranger, &s1, Peer::Master, None);
    if !refused(&answer) {
        // The forgery the hole allowed: a notice from a false master.
        let version = Version { incarnation: u64::MAX, counter: 1 };
        let notice = Msg::Master(MasterMsg::Notice { server: ServerId(1), liveness: Liveness::Offline, version });
        let _ = std::io::Write::write_all(&mut as_master, &failgroup::net::wire::encode(&notice));
    }
    assert!(refused(&answer), "a master hello from a stranger: {answer:?}");
    let (mut as_peer, answer) = node_hello(stranger, &s1, Peer::Server(ServerId(1)), None);
    if !refused(&answer) {
        let fwd = Forwarded { req: ReqId::default(), op: Op::Get(b"{fa}x".to_vec()), hops: 1 };
        let _ = std::io::Write::write_all(
            &mut as_peer,
            &failgroup::net::wire::encode(&Msg::Forward { op: 1, incarnation: 0, fwd }),
        );
    }
    assert!(refused(&answer), "a peer hello from a stranger: {answer:?}");
    let (_, answer) = node_hello(here, &s1, Peer::Server(ServerId(7)), None);
    assert!(refused(&answer), "a peer hello naming a server not in the cluster: {answer:?}");
    // The cluster's own nodes still talk: s2's keys are served through s1.
    let mut c = Resp::connect(&s1);
    assert_eq!(c.run("SET {fa}k v"), ok());
    assert_eq!(c.run("GET {fa}k"), bulk("v"));
    assert_eq!(
        failgroup_tests::info_field(&mut c, "failgroup", "servers_offline").as_deref(),
        Some(""),
        "no forged notice took a server offline"
    );
}

/// Hole 4: with `requirepass` set and no `secret`, the node protocol let
/// anyone run requests without the password. Such a cluster now refuses to
/// start, saying why.
#[test]
fn requirepass_without_a_secret_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("fg-holes-nopass-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "master = \"127.0.0.1:23590\"\nstore = \"sqlite:{}\"\nrequirepass = \"pw\"\n[cluster]\n\
             [[cluster.servers]]\nname = \"s1\"\naddr = \"127.0.0.1:23591\"\n\
             [[cluster.groups]]\nname = \"g1\"\nmembers = [\"s1\"]\n",
            dir.join("store.db").display()
        ),
    )
    .unwrap();
    for args in [vec!["server", "--id", "s1"], vec!["master"]] {
        let mut child = failgroup_tests::failgroup_command()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run failgroup");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} exits 2: {stderr}");
        assert!(stderr.contains("secret:") && stderr.contains("requirepass"), "{args:?} says why: {stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Tells the master "s1 may be offline", as a library client does after a
/// failed send; the master then probes s1 itself.
fn report_offline(cluster: &Cluster, server: u16) {
    use failgroup::net::wire::{Msg, Peer};
    use failgroup::net::NodeLink;
    use failgroup_model::{ClientId, Report, ServerId};
    let mut conn =
        NodeLink::open(&cluster.master(), Peer::Client(ClientId(9)), None, Duration::from_secs(5)).expect("master");
    conn.send(&Msg::Report(Report::MaybeOffline { server: ServerId(server) })).expect("report");
}

/// Waits until `check` holds (bounded).
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Hole 2: leases were timed by two kinds of clock. The holder trusts its
/// right on its monotonic clock; the store expired it on the wall clock of
/// whoever ran the transaction. Here s2 and s3 run with wall clocks 30 s
/// ahead (libfaketime): when s1 pauses and the master marks it offline,
/// its failover server found s1's right expired at once and wrote, while s1
/// (resumed within its lease) still served its cached value: a stale read.
/// Now a taker waits a whole lease on its own clock, so s1's trust has
/// run out before anyone else writes.
#[test]
fn a_stepped_wall_clock_never_lets_a_right_be_taken_early() {
    let Some(lib) = libfaketime() else {
        eprintln!("skipped: libfaketime is not installed (apt-get install faketime)");
        return;
    };
    // A long lease: s1's trust outlives the pause below by seconds.
    let mut cluster = Cluster::with_config(23600, 3, "[timing]\nlease = 6000\nrequest_timeout = 15000\n", "");
    let ahead = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", "+30s"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
    for s in ["s2", "s3"] {
        cluster.kill9(s);
        cluster.restart_with_env(s, &ahead);
    }
    let (s1, s3) = (cluster.addr("s1"), cluster.addr("s3"));
    let mut at_s1 = Resp::connect(&s1);
    eventually("s1 serves its key", Duration::from_secs(10), || at_s1.run("SET {fd}k old") == ok());
    assert_eq!(at_s1.run("GET {fd}k"), bulk("old"), "cached at s1");
    cluster.pause("s1");
    let t = Instant::now();
    report_offline(&cluster, 0);
    let mut at_s3 = Resp::connect(&s3);
    assert_eq!(at_s3.run("SET {fd}k new"), ok(), "a survivor takes s1's slot and writes");
    let took = t.elapsed();
    // s1 resumes; its GET was waiting in its socket and is served first.
    at_s1.send_raw(b"*2\r\n$3\r\nGET\r\n$5\r\n{fd}k\r\n");
    cluster.signal("s1", "CONT");
    let got = at_s1.read();
    assert!(
        got != bulk("old"),
        "stale read: s1 answered `old` after `new` was acknowledged (the survivor wrote {took:?} after the pause)"
    );
}

/// Hole 3: two processes of one server identity. A replacement s1 (a
/// copied config with another address, as an orchestrator restart or a
/// floating address gives) started while s1 was paused; the store granted
/// it s1's rights at once, it acknowledged a write, and the paused s1,
/// resumed, served its cached old value. Now a new incarnation of a name
/// waits out the old lease, and the old one never serves after it.
#[test]
fn a_second_process_of_one_identity_never_serves_beside_the_first() {
    let mut cluster = Cluster::with_config(23700, 3, "[timing]\nlease = 4000\nrequest_timeout = 12000\n", "");
    let s1 = cluster.addr("s1");
    let mut at_s1 = Resp::connect(&s1);
    eventually("s1 serves its key", Duration::from_secs(10), || at_s1.run("SET {fd}k old") == ok());
    assert_eq!(at_s1.run("GET {fd}k"), bulk("old"), "cached at s1");
    let twin_addr = "127.0.0.1:23710";
    let twin_config = cluster.twin_config("s1", twin_addr);
    cluster.pause("s1");
    cluster.spawn_server("s1", &twin_config, twin_addr, &[]);
    let mut at_twin = Resp::connect(twin_addr);
    assert_eq!(at_twin.run("SET {fd}k new"), ok(), "the second s1 writes");
    at_s1.send_raw(b"*2\r\n$3\r\nGET\r\n$5\r\n{fd}k\r\n");
    cluster.signal("s1", "CONT");
    let got = at_s1.read();
    assert!(got != bulk("old"), "stale read: the first s1 answered `old` after the second acknowledged `new`");
}

/// Hole 3: nodes that don't match the cluster. The store records the
/// cluster's mode and topology fingerprint; a node whose config differs is
/// refused at start, saying what differs and what to do, until `failgroup
/// adopt` records the new config (with the cluster stopped).
#[test]
fn a_node_of_another_mode_or_topology_is_refused_until_adopted() {
    let cluster = Cluster::with_config(23800, 2, "", "");
    let base = std::fs::read_to_string(cluster.dir.join("cluster.toml")).unwrap();
    // Another address for s1 is the same cluster (a server may move) ...
    let moved = base.replace(&cluster.addr("s1"), "127.0.0.1:23811");
    // ... another mode, or the servers in another order, is not.
    let available = format!("mode = \"available\"\n{moved}");
    let both_moved = moved.replace(&cluster.addr("s2"), "127.0.0.1:23812");
    let reordered = both_moved.replace("name = \"s1\"", "name = \"tmp\"").replace("name = \"s2\"", "name = \"s1\"");
    let reordered = reordered.replace("name = \"tmp\"", "name = \"s2\"");
    for (what, config, why) in
        [("available mode", &available, "mode"), ("servers reordered", &reordered, "another topology")]
    {
        let path = cluster.dir.join("other.toml");
        std::fs::write(&path, config).unwrap();
        let out = failgroup_tests::failgroup_command()
            .args(["server", "--id", "s1", "--config"])
            .arg(&path)
            .output()
            .expect("run failgroup");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: refused at start: {stderr}");
        assert!(stderr.contains(why) && stderr.contains("failgroup adopt"), "{what}: says why: {stderr}");
    }
    // `adopt` records a config; the store then knows that one.
    let path = cluster.dir.join("other.toml");
    std::fs::write(&path, &available).unwrap();
    let out = failgroup_tests::failgroup_command().args(["adopt", "--config"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "adopt: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&path, &moved).unwrap();
    let out = failgroup_tests::failgroup_command()
        .args(["server", "--id", "s1", "--config"])
        .arg(&path)
        .output()
        .expect("run failgroup");
    assert_eq!(out.status.code(), Some(2), "the old config is now the other cluster's");
}
