//! Settings that change while a server runs: CONFIG SET of the client
//! limits, the password and the log level (their errors are compared with
//! Redis's in `redis_differential`), SIGHUP re-reading the config file, and
//! a bind address apart from the address a server is known by.

use failgroup::resp::Reply;
use failgroup_tests::{Cluster, Resp};
use std::time::{Duration, Instant};

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn config_get(c: &mut Resp, name: &str) -> Option<String> {
    match c.run(&format!("CONFIG GET {name}")) {
        Reply::Array(Some(v)) if v.len() == 2 => match &v[1] {
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// Waits (at most 5 s) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn config_set_changes_the_password_limits_and_log_level_live() {
    let cluster = Cluster::with_config(24310, 1, "secret = \"sesame\"", "");
    let addr = cluster.addr("s1");
    let mut admin = Resp::connect(&addr);
    assert_eq!(admin.run("SET k v"), ok());

    // A password set live: new connections must AUTH, this one stays
    // authenticated (as in Redis, where it is the default user's).
    assert_eq!(admin.run("CONFIG SET requirepass pw"), ok());
    assert_eq!(config_get(&mut admin, "requirepass").as_deref(), Some("pw"));
    let mut fresh = Resp::connect(&addr);
    assert!(matches!(fresh.run("GET k"), Reply::Error(e) if e.starts_with("NOAUTH")));
    assert!(matches!(fresh.run("AUTH nope"), Reply::Error(e) if e.starts_with("WRONGPASS")));
    assert_eq!(fresh.run("AUTH pw"), ok());
    assert_eq!(fresh.run("GET k"), Reply::Bulk(Some(b"v".to_vec())));
    assert_eq!(admin.run("GET k"), Reply::Bulk(Some(b"v".to_vec())));
    // Empty: no password again.
    assert_eq!(admin.cmd(&[b"CONFIG", b"SET", b"requirepass", b""]), ok());
    assert_eq!(Resp::connect(&addr).run("GET k"), Reply::Bulk(Some(b"v".to_vec())));

    // maxclients: with two connections open, a bound of 2 refuses a third
    // as Redis does; raised again, it is let in.
    assert_eq!(admin.run("CONFIG SET maxclients 2"), ok());
    drop(fresh);
    let mut second = Resp::connect(&addr);
    assert_eq!(second.run("PING"), Reply::Simple("PONG".into()));
    eventually("the third connection refused", || {
        let r = Resp::connect(&addr).try_cmd(&[b"PING"]);
        matches!(r, Ok(Reply::Error(e)) if e == "ERR max number of clients reached")
    });
    assert_eq!(admin.run("CONFIG SET maxclients 100"), ok());
    assert_eq!(Resp::connect(&addr).run("PING"), Reply::Simple("PONG".into()));

    // timeout: an idle connection is closed once it has been idle longer.
    assert_eq!(admin.run("CONFIG SET timeout 1"), ok());
    let mut idle = Resp::connect(&addr);
    assert_eq!(idle.run("PING"), Reply::Simple("PONG".into()));
    assert!(idle.closed_within(Duration::from_secs(5)), "an idle connection outlived `timeout 1`");
    // (So was `admin`, idle meanwhile.)
    let mut last = Resp::connect(&addr);
    assert_eq!(last.run("CONFIG SET timeout 0 loglevel warning"), ok());
    assert_eq!(config_get(&mut last, "loglevel").as_deref(), Some("warning"));
}

/// Without the nodes' secret, a password would be bypassed by the node
/// protocol on the same port: CONFIG SET refuses it, saying why.
#[test]
fn a_password_needs_the_nodes_secret() {
    let cluster = Cluster::with_config(24320, 1, "", "");
    let mut c = Resp::connect(&cluster.addr("s1"));
    let r = c.run("CONFIG SET requirepass pw");
    assert!(matches!(&r, Reply::Error(e) if e.contains("requirepass") && e.contains("secret")), "{r:?}");
    assert_eq!(config_get(&mut c, "requirepass").as_deref(), Some(""));
}

#[test]
fn sighup_rereads_the_file_and_a_bad_file_changes_nothing() {
    let mut cluster = Cluster::with_config(24330, 1, "secret = \"sesame\"", "");
    let addr = cluster.addr("s1");
    let mut c = Resp::connect(&addr);
    // A connection's session starts with its first command: this one's
    // before the password, so it stays logged in.
    assert_eq!(c.run("PING"), Reply::Simple("PONG".into()));
    let path = cluster.dir.join("cluster.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    // A password and a client limit in the file, taken at SIGHUP.
    let changed = text.replacen("[cluster]\n", "requirepass = \"pw\"\n[limits]\nmaxclients = 7\n[cluster]\n", 1);
    assert_ne!(changed, text);
    std::fs::write(&path, &changed).expect("write");
    cluster.signal("s1", "HUP");
    eventually("maxclients from the file", || config_get(&mut c, "maxclients").as_deref() == Some("7"));
    assert_eq!(config_get(&mut c, "requirepass").as_deref(), Some("pw"));
    assert!(matches!(Resp::connect(&addr).run("PING"), Reply::Error(e) if e.starts_with("NOAUTH")));

    // A file that does not load changes nothing, and the server runs on.
    std::fs::write(&path, "this is not toml [").expect("write");
    cluster.signal("s1", "HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(config_get(&mut c, "maxclients").as_deref(), Some("7"));
    assert_eq!(c.run("PING"), Reply::Simple("PONG".into()));
}

/// A server listens on its `[bind]` address and is known to clients and
/// peers by its `addr`: CLUSTER SLOTS, asked on the bind address, names
/// `addr`, and the library client (which fetches the topology over the
/// node protocol) finds it. A bind address that is not one, or of no
/// server, is refused, naming the field.
#[test]
fn a_server_listens_on_its_bind_address_and_announces_its_addr() {
    let mut cluster = Cluster::with_config(24340, 1, "", "");
    let path = cluster.dir.join("cluster.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let addr = cluster.addr("s1");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let bind = format!("127.0.0.2:{}", port + 40);
    let with_bind = |table: &str| text.replacen("[cluster]\n", &format!("{table}\n[cluster]\n"), 1);
    for (table, field) in [("[bind]\ns1 = \"nowhere\"", "bind.s1"), ("[bind]\ns9 = \"127.0.0.1:1\"", "bind.s9")] {
        let e = failgroup::config::Config::parse(&with_bind(table), cluster.dir.clone()).unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    // s1 again, from a copy of the config that binds it elsewhere.
    let copy = cluster.dir.join("bind.toml");
    std::fs::write(&copy, with_bind(&format!("[bind]\ns1 = \"{bind}\""))).expect("write");
    cluster.kill9("s1");
    cluster.spawn_server("s1", &copy, &bind, &[]);
    let mut c = Resp::connect(&bind);
    assert_eq!(c.run("PING"), Reply::Simple("PONG".into()));
    let slots = format!("{:?}", c.run("CLUSTER SLOTS"));
    assert!(slots.contains(&format!("{:?}", b"127.0.0.1".to_vec())) && slots.contains(&port.to_string()), "{slots}");
    assert!(!slots.contains(&(port + 40).to_string()), "{slots}");
    let client = failgroup::Client::connect(&bind).expect("the library client reads the topology");
    drop(client);
}
