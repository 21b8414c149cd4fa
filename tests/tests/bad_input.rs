//! Bad input, each case against real processes on loopback: every one gets
//! an error reply or a closed connection, never a crash or a hang, and the
//! server's other clients go on undisturbed.

use failgroup::net::wire::{self, Msg, Peer};
use failgroup::resp::Reply;
use failgroup_model::{Liveness, MasterMsg, Report, ServerId, Version};
use failgroup_tests::{bulk, info_field, ok, Cluster, Resp};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends `bytes` on a fresh connection; returns the first reply (if any)
/// and whether the server then closed the connection.
/// A tool's options with the cluster's secret.
fn secret(s: &str) -> failgroup::ClientOptions {
    failgroup::ClientOptions { secret: Some(s.into()), tls: None }
}

fn poke(addr: &str, bytes: &[u8]) -> (Option<Reply>, bool) {
    let mut c = Resp::connect(addr);
    c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_raw(bytes);
    let first = c.try_read();
    let closed = first.is_none() || c.closed_within(Duration::from_secs(2));
    (first, closed)
}

fn protocol_error(r: &Option<Reply>) -> bool {
    matches!(r, Some(Reply::Error(e)) if e.starts_with("ERR Protocol error"))
}

#[test]
fn malformed_resp_is_answered_and_the_connection_closed() {
    let cluster = Cluster::with_config(22100, 1, "", "[limits]\nmax_bulk = 1000\n");
    let addr = cluster.addr("s1");
    let mut bystander = Resp::connect(&addr);
    assert_eq!(bystander.run("SET calm yes"), ok());
    let cases: [(&str, &[u8]); 8] = [
        ("bad type byte in an array", b"*1\r\n+GET\r\n"),
        ("negative bulk length", b"*1\r\n$-3\r\n"),
        ("huge multibulk length", b"*99999999999\r\n"),
        ("non-numeric length", b"*x\r\n"),
        ("missing CRLF after a bulk", b"*1\r\n$4\r\nPINGxx"),
        ("deep nesting", b"*1\r\n*1\r\n*1\r\n*1\r\n$4\r\nPING\r\n"),
        ("bulk over the configured limit", b"*2\r\n$3\r\nGET\r\n$1001\r\n"),
        ("unbalanced quotes inline", b"GET \"abc\r\n"),
    ];
    for (what, bytes) in cases {
        let (reply, closed) = poke(&addr, bytes);
        assert!(protocol_error(&reply), "{what}: {reply:?}");
        assert!(closed, "{what}: the connection is closed");
    }
    // A bulk at the limit is fine.
    let mut c = Resp::connect(&addr);
    assert_eq!(c.cmd(&[b"SET", b"k", &[b'x'; 1000]]), ok());
    // Empty array and blank inline lines are ignored, as Redis does.
    c.send_raw(b"*0\r\n\r\nPING\r\n");
    assert_eq!(c.read(), Reply::Simple("PONG".into()));
    assert_eq!(bystander.run("GET calm"), bulk("yes"), "other clients are not disturbed");
}

#[test]
fn slow_half_frames_and_idle_clients_stall_nobody_and_time_out() {
    let cluster = Cluster::with_config(22200, 1, "", "[limits]\nidle_timeout = 1\n");
    let addr = cluster.addr("s1");
    // Half a frame, then silence (slowloris).
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"*2\r\n$3\r\nGET\r\n$10\r\nabc").unwrap();
    let idle = TcpStream::connect(&addr).unwrap();
    // Everyone else is served meanwhile.
    let mut c = Resp::connect(&addr);
    let t = Instant::now();
    for i in 0..100 {
        assert_eq!(c.run(&format!("SET k{i} v")), ok());
    }
    assert!(t.elapsed() < Duration::from_secs(5), "served while a frame hangs: {:?}", t.elapsed());
    // After the idle timeout both are closed.
    for mut s in [slow, idle] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let t = Instant::now();
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed, not answered");
        assert!(t.elapsed() < Duration::from_secs(4), "closed within the idle timeout");
    }
}

#[test]
fn more_connections_than_maxclients_are_refused() {
    let cluster = Cluster::with_config(22300, 1, "", "[limits]\nmaxclients = 3\n");
    let addr = cluster.addr("s1");
    let mut held: Vec<Resp> = (0..3).map(|_| Resp::connect(&addr)).collect();
    for c in &mut held {
        assert_eq!(c.run("PING"), Reply::Simple("PONG".into()));
    }
    let (reply, closed) = poke(&addr, b"PING\r\n");
    assert_eq!(reply, Some(Reply::Error("ERR max number of clients reached".into())));
    assert!(closed);
    drop(held.pop());
    // A slot frees up once a client leaves.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (reply, _) = poke(&addr, b"PING\r\n");
        if reply == Some(Reply::Simple("PONG".into())) {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot is reused: {reply:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn huge_and_binary_keys_and_values() {
    let cluster = Cluster::with_config(22400, 2, "", "");
    let mut c = Resp::connect(&cluster.addr("s1"));
    let key: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let value: Vec<u8> = (0..=255u8).rev().cycle().take(8 << 20).collect();
    assert_eq!(c.cmd(&[b"SET", &key, &value]), ok());
    let mut other = Resp::connect(&cluster.addr("s2"));
    assert_eq!(other.cmd(&[b"GET", &key]), Reply::Bulk(Some(value)), "forwarded both ways intact");
    assert_eq!(c.cmd(&[b"DEL", &key]), Reply::Int(1));
}

#[test]
fn requirepass_answers_as_redis_does() {
    let cluster = Cluster::with_config(22500, 1, "requirepass = \"sesame\"\nsecret = \"s3cret\"", "");
    let mut c = Resp::connect(&cluster.addr("s1"));
    assert_eq!(c.run("GET k"), Reply::Error("NOAUTH Authentication required.".into()));
    assert_eq!(c.run("PING"), Reply::Error("NOAUTH Authentication required.".into()));
    let wrong = c.run("AUTH nope");
    assert_eq!(wrong, Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into()));
    assert_eq!(c.run("GET k"), Reply::Error("NOAUTH Authentication required.".into()));
    assert_eq!(c.run("AUTH default sesame"), ok());
    assert_eq!(c.run("SET k v"), ok());
    assert_eq!(c.run("GET k"), bulk("v"));
}

/// Garbage on the node port of a server and on the master's port closes
/// that connection only.
#[test]
fn garbage_on_node_and_master_ports_closes_only_that_connection() {
    let cluster = Cluster::with_config(22600, 2, "secret = \"s3cret\"", "");
    let server = cluster.addr("s1");
    let closes = |addr: &str, bytes: &[u8]| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        let mut buf = Vec::new();
        // Whatever it answers (a refusal frame at most), it closes.
        let r = s.read_to_end(&mut buf);
        assert!(r.is_ok() && buf.len() < 256, "{addr} closed after {bytes:?}: {r:?} {buf:?}");
    };
    let mut hello = wire::PREAMBLE.to_vec();
    hello.extend(wire::encode(&Msg::Hello { from: Peer::Server(ServerId(1)), secret: None }));
    let mut huge = wire::PREAMBLE.to_vec();
    huge.extend((u32::MAX).to_be_bytes());
    let mut undecodable = wire::PREAMBLE.to_vec();
    undecodable.extend([0, 0, 0, 3, 0xff, 0xff, 0xff]);
    let mut no_hello = wire::PREAMBLE.to_vec();
    no_hello.extend(wire::encode(&Msg::InfoRequest));
    let wrong_version = [0u8, b'F', b'G', 99];
    for bytes in [&hello[..], &huge, &undecodable, &no_hello, &wrong_version, b"\0\0\0\0garbage"] {
        closes(&server, bytes);
        closes(&cluster.master(), bytes);
    }
    // RESP other than INFO, PING and QUIT: an error naming them, then closed.
    closes(&cluster.master(), b"GET k\r\n");
    // The cluster is unharmed.
    let mut c = Resp::connect(&server);
    assert_eq!(c.run("SET k v"), ok());
    let mut c2 = Resp::connect(&cluster.addr("s2"));
    assert_eq!(c2.run("GET k"), bulk("v"));
    assert!(failgroup::cli::dev::fetch_status(&cluster.master(), &secret("s3cret"))
        .unwrap()
        .servers
        .iter()
        .all(|s| s.online));
}

/// Forged and replayed notices: a report that a healthy server is offline
/// is verified by the master and dismissed; a replayed (older) notice
/// changes nothing; without the secret, nobody may speak as the master.
#[test]
fn forged_and_replayed_notices_never_take_a_healthy_server_offline() {
    let cluster = Cluster::with_config(22700, 3, "secret = \"s3cret\"", "");
    let timeout = Duration::from_secs(2);
    // Impersonating the master without the secret is refused.
    let refused = failgroup::net::NodeLink::open(&cluster.addr("s1"), Peer::Master, None, timeout);
    assert!(refused.is_err(), "a hello without the secret is refused");
    let refused = failgroup::net::NodeLink::open(&cluster.addr("s1"), Peer::Master, Some("guess"), timeout);
    assert!(refused.is_err(), "a hello with a wrong secret is refused");
    // A client that lies to the master: "s2 is offline", many times.
    let mut liar = failgroup::net::NodeLink::open(
        &cluster.master(),
        Peer::Client(failgroup_model::ClientId(666)),
        Some("s3cret"),
        timeout,
    )
    .unwrap();
    for _ in 0..20 {
        liar.send(&Msg::Report(Report::MaybeOffline { server: ServerId(1) })).unwrap();
    }
    // A replayed notice from an older master incarnation.
    let mut replay =
        failgroup::net::NodeLink::open(&cluster.addr("s1"), Peer::Master, Some("s3cret"), timeout).unwrap();
    let old = Version { incarnation: 1, counter: 1 };
    let notice = MasterMsg::Notice { server: ServerId(1), liveness: Liveness::Offline, version: old };
    // Let the real master's first view (a newer version) arrive first.
    std::thread::sleep(Duration::from_millis(1500));
    replay.send(&Msg::Master(notice)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status = failgroup::cli::dev::fetch_status(&cluster.master(), &secret("s3cret")).unwrap();
    assert!(status.servers.iter().all(|s| s.online && s.failovers == 0), "{status:?}");
    let mut c = Resp::connect(&cluster.addr("s1"));
    assert_eq!(info_field(&mut c, "failgroup", "servers_offline").as_deref(), Some(""));
    assert_eq!(c.run("SET k v"), ok());
}

/// A deep pipeline runs `limits.max_pipeline` commands at a time and yields
/// to the other connections in between; every reply still comes, in order.
#[test]
fn deep_pipelines_yield_to_other_clients() {
    let cluster = Cluster::with_config(22900, 1, "", "[limits]\nmax_pipeline = 8\n");
    let addr = cluster.addr("s1");
    let mut deep = Resp::connect(&addr);
    let mut batch = Vec::new();
    for i in 0..5000 {
        failgroup::resp::encode_command(&mut batch, &[b"ECHO", i.to_string().as_bytes()]);
    }
    deep.send_raw(&batch);
    let mut other = Resp::connect(&addr);
    assert_eq!(other.run("SET k v"), ok());
    assert_eq!(other.run("GET k"), bulk("v"));
    for i in 0..5000 {
        assert_eq!(deep.read(), bulk(&i.to_string()), "reply {i} in order");
    }
}

/// `failgroup status` says why it printed nothing (exit 3: the master
/// cannot be reached; 2: it refused a wrong secret), its JSON form parses,
/// and `--watch` prints again and again.
#[test]
fn status_exits_by_cause_prints_json_and_watches() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let cluster = Cluster::with_config(23100, 2, "secret = \"s3cret\"", "");
    let config = cluster.dir.join("cluster.toml");
    let status = |args: &[&str]| Command::new(failgroup_tests::binary()).arg("status").args(args).output().unwrap();
    let said = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let out = status(&["--master", &free]);
    assert_eq!(out.status.code(), Some(3), "unreachable master: {}", said(&out));
    assert!(said(&out).contains(&format!("master {free}")), "{}", said(&out));
    let out = status(&["--master", &cluster.master()]);
    assert_eq!(out.status.code(), Some(2), "no secret: {}", said(&out));
    let out = status(&["--config", config.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", said(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let servers = doc["servers"].as_array().expect("servers");
    assert_eq!(servers.iter().map(|s| s["name"].as_str().unwrap()).collect::<Vec<_>>(), ["s1", "s2"]);
    assert!(servers.iter().all(|s| s["online"] == true), "{doc}");
    let slots: u64 = servers
        .iter()
        .flat_map(|s| {
            s["serves"].as_array().unwrap().iter().map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap() + 1)
        })
        .sum();
    assert_eq!(slots, 16384, "every slot served once: {doc}");
    // --watch: a document per line, again and again, until killed.
    let mut watch = Command::new(failgroup_tests::binary())
        .args(["status", "--config", config.to_str().unwrap(), "--json", "--watch", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Lines through a channel, so that a silent watcher cannot hang the test.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if line.map(|l| tx.send(l)).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut docs = 0;
    while docs < 3 {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else { break };
        let doc: serde_json::Value = serde_json::from_str(&line).expect("a JSON document per line");
        assert_eq!(doc["servers"].as_array().map(Vec::len), Some(2));
        docs += 1;
    }
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert_eq!(docs, 3, "three documents within 10 s");
}
