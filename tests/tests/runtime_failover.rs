//! The runtime under real process faults, on loopback: `kill -9` of a
//! server under steady load from the Rust client gives no client-visible
//! error and no stale read, and the restarted server serves its slots
//! again. Also: redis-cli and redis-benchmark work against `failgroup dev`.

use failgroup::resp::Reply;
use failgroup_tests::{info_field, Cluster, Resp};
use std::process::Command;
use std::time::{Duration, Instant};

/// One client, its own keys: every read must return the last value this
/// client wrote (nobody else writes them), so a stale read is seen at once.
struct Load {
    client: failgroup::Client,
    keys: Vec<Vec<u8>>,
    last: Vec<u64>,
    ops: u64,
    errors: Vec<String>,
    slowest: Duration,
}

impl Load {
    fn new(addr: &str, keys: usize) -> Load {
        let client = failgroup::Client::connect(addr).expect("client connects");
        let keys: Vec<Vec<u8>> = (0..keys).map(|i| format!("load:{i}").into_bytes()).collect();
        let last = vec![0; keys.len()];
        Load { client, keys, last, ops: 0, errors: Vec::new(), slowest: Duration::ZERO }
    }

    /// One write and one read of the next key.
    fn round(&mut self) {
        let i = (self.ops as usize) % self.keys.len();
        self.ops += 1;
        let next = self.last[i] + 1;
        let t = Instant::now();
        match self.client.set(&self.keys[i], next.to_string().as_bytes()) {
            Ok(()) => self.last[i] = next,
            Err(e) => self.errors.push(format!("SET {}: {e}", String::from_utf8_lossy(&self.keys[i]))),
        }
        match self.client.get(&self.keys[i]) {
            Ok(v) => {
                let got: u64 = v.map(|v| String::from_utf8(v).unwrap().parse().unwrap()).unwrap_or(0);
                assert_eq!(got, self.last[i], "stale read of {}", String::from_utf8_lossy(&self.keys[i]));
            }
            Err(e) => self.errors.push(format!("GET: {e}")),
        }
        self.slowest = self.slowest.max(t.elapsed());
    }

    fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.round();
        }
    }
}

fn serves_own_slots(addr: &str) -> bool {
    let mut c = Resp::connect(addr);
    let served = info_field(&mut c, "failgroup", "slots_served");
    served.is_some() && served == info_field(&mut c, "failgroup", "slots_owned")
}

#[test]
fn kill_9_of_a_server_gives_no_errors_and_no_stale_reads() {
    let mut cluster = Cluster::start(21400, 3, 1);
    let mut load = Load::new(&cluster.addr("s1"), 24);
    load.run_for(Duration::from_secs(2));
    assert!(load.ops > 50, "steady load before the kill: {} rounds", load.ops);
    assert!(load.errors.is_empty(), "{:?}", load.errors);

    cluster.kill9("s2");
    let before = load.ops;
    load.run_for(Duration::from_secs(6));
    assert!(load.errors.is_empty(), "client-visible errors after kill -9: {:?}", load.errors);
    assert!(load.ops - before > 20, "the load went on: {} rounds", load.ops - before);
    let mut status = Resp::connect(&cluster.addr("s1"));
    assert_eq!(info_field(&mut status, "failgroup", "servers_offline").as_deref(), Some("s2"));
    let others: u64 = info_field(&mut status, "failgroup", "slots_served_for_others").unwrap().parse().unwrap();
    let mut s3 = Resp::connect(&cluster.addr("s3"));
    let others3: u64 = info_field(&mut s3, "failgroup", "slots_served_for_others").unwrap().parse().unwrap();
    assert!(others + others3 > 0, "survivors serve the dead server's slots");
    // `failgroup dev` said so, and kept the others running.
    let said = cluster.output();
    assert!(said.iter().any(|l| l.starts_with("server s2 ") && l.contains("exited")), "dev printed: {said:?}");
    // `failgroup status` shows the master's view.
    let out = Command::new(failgroup_tests::binary()).args(["status", "--master", &cluster.master()]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "failgroup status: {table}");
    let s2_line = table.lines().find(|l| l.starts_with("s2 ")).expect("a line for s2");
    assert!(s2_line.contains("offline") && s2_line.contains(" 0 slots"), "{table}");
    // A client may also fetch the topology from the master.
    let mut via_master = failgroup::Client::connect(&cluster.master()).expect("topology from the master");
    assert_eq!(via_master.get(&load.keys[0]).unwrap(), Some(load.last[0].to_string().into_bytes()));

    // Restart: the server takes its slots back, the load never errs.
    cluster.restart("s2");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        load.run_for(Duration::from_millis(300));
        if serves_own_slots(&cluster.addr("s2")) {
            break;
        }
        assert!(Instant::now() < deadline, "s2 serves its slots again within 20 s of its restart");
    }
    load.run_for(Duration::from_secs(2));
    assert!(load.errors.is_empty(), "client-visible errors after the restart: {:?}", load.errors);
    // Waits are bounded by the lease and the send timeout (defaults 2 s
    // and 3 s), far below the request timeout (10 s).
    assert!(load.slowest < Duration::from_secs(5), "slowest operation {:?}", load.slowest);
    let mut s2 = Resp::connect(&cluster.addr("s2"));
    assert_eq!(info_field(&mut s2, "failgroup", "slots_served_for_others").as_deref(), Some("0"));
    let offline = info_field(&mut status, "failgroup", "servers_offline");
    assert_eq!(offline.as_deref(), Some(""), "s2 announced online again");
    eprintln!("{} rounds, slowest {:?}", load.ops, load.slowest);
}

#[test]
fn redis_cli_and_redis_benchmark_work_unmodified() {
    let cluster = Cluster::start(21500, 3, 1);
    let port = |name: &str| cluster.addr(name).rsplit(':').next().unwrap().to_string();
    let cli = |p: &str, args: &[&str]| {
        let out = Command::new("redis-cli").args(["-p", p]).args(args).output().expect("redis-cli is installed");
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&port("s1"), &["SET", "k", "v"]), "OK\n");
    assert_eq!(cli(&port("s3"), &["GET", "k"]), "v\n");
    assert_eq!(cli(&port("s2"), &["INCRBY", "c", "5"]), "5\n");

    let out = Command::new("redis-benchmark")
        .args(["-p", &port("s1"), "-t", "set,get", "-n", "100000", "-P", "16", "-q"])
        .output()
        .expect("redis-benchmark is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-benchmark failed: {text}");
    assert!(!text.to_lowercase().contains("error"), "redis-benchmark saw errors: {text}");
    for t in ["SET: ", "GET: "] {
        assert!(text.contains(t) && text.contains("requests per second"), "{t} completed: {text}");
    }
    // The benchmark's keys are readable through another server.
    let mut c = Resp::connect(&cluster.addr("s2"));
    assert!(matches!(c.run("GET key:__rand_int__"), Reply::Bulk(Some(_))));
    assert_eq!(c.run("PING"), Reply::Simple("PONG".into()));
}

/// redis-py (Debian's python3-redis), unmodified: handshake, commands,
/// binary values, a pipeline, through an owner and a non-owner.
#[test]
fn redis_py_works_unmodified() {
    let cluster = Cluster::start(21600, 3, 1);
    let python = if std::path::Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    let script = r#"
import sys, redis
a = redis.Redis(port=int(sys.argv[1]), client_name="t")
b = redis.Redis(port=int(sys.argv[2]))
assert a.ping()
assert a.set("py", b"\x00bin\r\n")
assert b.get("py") == b"\x00bin\r\n"
assert a.incr("pyc") == 1 and b.incrby("pyc", 4) == 5
assert a.mget(["py", "pyc", "none"]) == [b"\x00bin\r\n", b"5", None]
assert a.set("e", "1", ex=10) and b.ttl("e") in (9, 10)
assert a.set("py", "x", nx=True) is None
assert b.exists("py", "e") == 2 and a.delete("py", "e") == 2
assert b.client_getname() is None and a.client_getname() == "t"
assert a.info("failgroup")["mode"] == "linearizable"
p = b.pipeline(transaction=False)
for i in range(50):
    p.set(f"k{i}", i)
    p.get(f"k{i}")
out = p.execute()
assert out[1::2] == [str(i).encode() for i in range(50)], out
print("ok")
"#;
    let port = |n: &str| cluster.addr(n).rsplit(':').next().unwrap().to_string();
    let out = Command::new(python)
        .args(["-c", script, &port("s1"), &port("s3")])
        .output()
        .expect("python3 with the redis module (python3-redis) is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim() == "ok", "redis-py: {text}");
}

#[test]
fn the_default_build_has_no_async_runtime() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "failgroup", "-e", "normal", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.lines().any(|l| l.starts_with("mio ")), "the tree is read: {tree}");
    for runtime in ["tokio ", "async-std ", "smol "] {
        assert!(!tree.lines().any(|l| l.starts_with(runtime)), "{runtime}in the default build");
    }
}

/// A second process of a server's name (a copied config, another port) links
/// to the peers too. A peer must still answer what the first process
/// forwarded on the first's own link: replies are sent back by the
/// forwarding run (name and incarnation), not by name alone, which the
/// second process took over. Every GET forwarded through s1 while the
/// second s1 runs is answered, promptly.
#[test]
fn a_second_process_of_a_name_does_not_take_the_first_ones_replies() {
    let mut cluster = Cluster::start(21960, 3, 1);
    let twin_addr = "127.0.0.1:22010";
    let twin_config = cluster.twin_config("s1", twin_addr);
    let mut c = Resp::connect(&cluster.addr("s1"));
    // Keys of s2 and s3, forwarded by s1.
    let keys: Vec<String> = (0..200)
        .map(|i| format!("twin:{i}"))
        .filter(|k| {
            let slot = failgroup_model::key_slot(k.as_bytes(), failgroup_model::SLOTS).0;
            slot > 5461
        })
        .take(10)
        .collect();
    for k in &keys {
        assert_eq!(c.run(&format!("SET {k} v")), Reply::Simple("OK".into()));
    }
    let twin = cluster.spawn_server("s1", &twin_config, twin_addr, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    for k in &keys {
        let t = Instant::now();
        let r = c.run(&format!("GET {k}"));
        assert_eq!(r, Reply::Bulk(Some(b"v".to_vec())), "GET {k} through s1 beside a second s1");
        assert!(t.elapsed() < Duration::from_secs(2), "GET {k} answered after {:?}", t.elapsed());
    }
    cluster.kill_pid(twin);
}
