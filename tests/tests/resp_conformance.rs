//! RESP conformance against a real cluster on loopback: every command the
//! servers support, answered as Redis answers it, errors included, through
//! an owner and through non-owners (which forward, c15).

use failgroup::resp::Reply;
use failgroup_tests::{bulk, info_field, ok, Cluster, Resp};

fn err(r: Reply) -> String {
    match r {
        Reply::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn commands_answer_as_redis_does() {
    let cluster = Cluster::start(21100, 3, 1);
    let mut c = Resp::connect(&cluster.addr("s2"));

    // Connection commands and the handshakes clients send.
    assert_eq!(c.run("PING"), Reply::Simple("PONG".into()));
    assert_eq!(c.run("PING hi"), bulk("hi"));
    assert_eq!(c.run("ECHO hello"), bulk("hello"));
    assert_eq!(c.run("SELECT 0"), ok());
    assert_eq!(err(c.run("SELECT 1")), "ERR SELECT is not allowed in cluster mode");
    assert!(matches!(c.run("HELLO 2"), Reply::Array(Some(v)) if v.len() == 14));
    assert!(matches!(c.run("HELLO 3"), Reply::Map(v) if v.len() == 7));
    assert_eq!(c.run("GET nosuchkey"), Reply::Null, "RESP3's null");
    assert!(matches!(c.run("HELLO 2"), Reply::Array(Some(v)) if v.len() == 14));
    assert!(err(c.run("HELLO 4")).starts_with("NOPROTO"));
    assert_eq!(c.run("CLIENT SETNAME app"), ok());
    assert_eq!(c.run("CLIENT GETNAME"), bulk("app"));
    assert_eq!(c.run("CLIENT SETINFO lib-name redis-rs"), ok());
    assert!(matches!(c.run("CLIENT ID"), Reply::Int(_)));
    // COMMAND DOCS: a name, then its docs, for every command served.
    assert!(matches!(c.run("COMMAND DOCS"), Reply::Array(Some(v)) if v.len() > 80 && v[0] == bulk("acl")));
    assert_eq!(c.run("CONFIG GET save"), Reply::Array(Some(vec![bulk("save"), bulk("")])));
    assert_eq!(c.run("CONFIG GET nosuch"), Reply::Array(Some(vec![])));
    assert!(err(c.run("AUTH pw")).starts_with("ERR AUTH <password> called without any password"));

    // Strings.
    assert_eq!(c.run("SET k1 v1"), ok());
    assert_eq!(c.run("GET k1"), bulk("v1"));
    assert_eq!(c.run("GET nokey"), Reply::Bulk(None));
    assert_eq!(c.run("SET k1 v2 NX"), Reply::Bulk(None));
    assert_eq!(c.run("SET k1 v2 XX"), ok());
    assert_eq!(c.run("SET k9 v XX"), Reply::Bulk(None));
    assert_eq!(c.run("GET k1"), bulk("v2"));
    assert_eq!(c.run("SET t v EX 100"), ok());
    assert!(matches!(c.run("TTL t"), Reply::Int(99 | 100)));
    assert!(matches!(c.run("PTTL t"), Reply::Int(n) if n > 98_000 && n <= 100_000));
    assert_eq!(c.run("SET p v PX 300"), ok());
    assert_eq!(c.run("GET p"), bulk("v"));
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(c.run("GET p"), Reply::Bulk(None), "expired by the store's clock");
    assert_eq!(c.run("TTL p"), Reply::Int(-2));
    assert_eq!(c.run("TTL k1"), Reply::Int(-1));
    assert_eq!(c.run("EXPIRE k1 50"), Reply::Int(1));
    assert!(matches!(c.run("TTL k1"), Reply::Int(49 | 50)));
    assert_eq!(c.run("EXPIRE nokey 50"), Reply::Int(0));
    assert_eq!(c.run("INCR n"), Reply::Int(1));
    assert_eq!(c.run("INCRBY n 10"), Reply::Int(11));
    assert_eq!(c.run("DECR n"), Reply::Int(10));
    assert_eq!(c.run("DECRBY n 3"), Reply::Int(7));
    assert_eq!(c.run("GET n"), bulk("7"));
    assert_eq!(c.run("EXISTS n k1 nokey"), Reply::Int(2));
    assert_eq!(c.run("DEL n k1 nokey"), Reply::Int(2));
    assert_eq!(c.run("EXISTS n k1"), Reply::Int(0));

    // Multi-key commands: MGET splits across slots; MSET wants one slot.
    assert_eq!(c.run("SET a 1"), ok());
    assert_eq!(c.run("SET b 2"), ok());
    assert_eq!(c.run("MGET a nokey b"), Reply::Array(Some(vec![bulk("1"), Reply::Bulk(None), bulk("2")])));
    assert_eq!(err(c.run("MSET a 1 b 2")), "CROSSSLOT Keys in request don't hash to the same slot");
    assert_eq!(c.run("MSET {u}x 1 {u}y 2"), ok());
    assert_eq!(c.run("MGET {u}x {u}y"), Reply::Array(Some(vec![bulk("1"), bulk("2")])));

    // Errors: arity, type, syntax, unknown command.
    assert_eq!(err(c.run("GET")), "ERR wrong number of arguments for 'get' command");
    assert_eq!(err(c.run("SET k")), "ERR wrong number of arguments for 'set' command");
    assert_eq!(err(c.run("MSET a")), "ERR wrong number of arguments for 'mset' command");
    assert_eq!(c.run("SET s notanumber"), ok());
    assert_eq!(err(c.run("INCR s")), "ERR value is not an integer or out of range");
    assert_eq!(err(c.run("INCRBY n x")), "ERR value is not an integer or out of range");
    assert_eq!(c.run("SET big 9223372036854775807"), ok());
    assert_eq!(err(c.run("INCR big")), "ERR increment or decrement would overflow", "as Redis answers");
    assert_eq!(err(c.run("SET k v NX XX")), "ERR syntax error");
    assert_eq!(err(c.run("SET k v EX")), "ERR syntax error");
    assert_eq!(err(c.run("SET k v EX -1")), "ERR invalid expire time in 'set' command");
    assert!(err(c.run("LPUSH l a")).starts_with("ERR unknown command 'LPUSH', with args beginning with: 'l' 'a'"));
    assert!(err(c.run("CLIENT NOPE")).starts_with("ERR unknown subcommand"));

    // INFO sections.
    for (section, field) in [
        ("server", "redis_version"),
        ("clients", "connected_clients"),
        ("stats", "total_commands_processed"),
        ("failgroup", "mode"),
    ] {
        assert!(info_field(&mut c, section, field).is_some(), "INFO {section} has {field}");
    }
    assert_eq!(info_field(&mut c, "failgroup", "mode").as_deref(), Some("linearizable"));
    // The store stands where Redis reports persistence: this connection's
    // writes above were committed there, in batches (one reply read, as
    // lease renewals commit meanwhile).
    let Reply::Bulk(Some(p)) = c.run("INFO persistence") else { panic!("INFO persistence") };
    let p = String::from_utf8(p).unwrap();
    assert!(p.starts_with("# Persistence\r\n"), "{p}");
    let field = |name: &str| {
        p.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).unwrap_or_else(|| panic!("{name} in {p}"))
    };
    let store = if failgroup_tests::TestStore::postgres_selected() { "postgres" } else { "sqlite" };
    assert_eq!((field("store"), field("loading")), (store, "0"));
    let commits: u64 = field("store_commits").parse().unwrap();
    let commands: u64 = field("store_commands").parse().unwrap();
    assert!(commits > 0 && commands >= commits, "{commits} commits of {commands} commands");
    let avg: f64 = field("store_batch_avg_commands").parse().unwrap();
    assert!((avg - commands as f64 / commits as f64).abs() < 0.01, "average batch {avg}");
    assert!(field("store_commit_avg_usec").parse::<u64>().unwrap() > 0, "{p}");
    let Reply::Bulk(Some(all)) = c.run("INFO") else { panic!("INFO") };
    let all = String::from_utf8(all).unwrap();
    for header in ["# Server", "# Clients", "# Persistence", "# Stats", "# Keyspace", "# Failgroup"] {
        assert!(all.contains(header), "INFO has {header}");
    }

    // QUIT answers, then the server closes the connection.
    assert_eq!(c.run("QUIT"), ok());
    assert_eq!(c.try_read(), None);
}

#[test]
fn binary_safe_pipelined_and_inline() {
    let cluster = Cluster::start(21200, 3, 1);
    let mut c = Resp::connect(&cluster.addr("s1"));
    // Keys and values with NUL, CR, LF and high bytes.
    let key: &[u8] = b"bin\0\r\n\xff key";
    let value: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    assert_eq!(c.cmd(&[b"SET", key, &value]), ok());
    assert_eq!(c.cmd(&[b"GET", key]), Reply::Bulk(Some(value.clone())));
    assert_eq!(c.cmd(&[b"SET", b"", b""]), ok());
    assert_eq!(c.cmd(&[b"GET", b""]), bulk(""));

    // 200 commands in one write: replies in order.
    let mut batch = Vec::new();
    for i in 0..100 {
        failgroup::resp::encode_command(&mut batch, &[b"SET", format!("p{i}").as_bytes(), i.to_string().as_bytes()]);
        failgroup::resp::encode_command(&mut batch, &[b"GET", format!("p{i}").as_bytes()]);
    }
    c.send_raw(&batch);
    for i in 0..100 {
        assert_eq!(c.read(), ok());
        assert_eq!(c.read(), bulk(&i.to_string()), "GET p{i} sees the SET before it");
    }

    // Inline commands, as telnet sends them.
    c.send_raw(b"SET inl \"a b\"\r\nGET inl\r\nPING\r\n");
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), bulk("a b"));
    assert_eq!(c.read(), Reply::Simple("PONG".into()));

    // A protocol error is answered, then the connection is closed; other
    // clients are not disturbed.
    let mut bad = Resp::connect(&cluster.addr("s1"));
    bad.send_raw(b"*1\r\n$-7\r\n");
    assert!(matches!(bad.read(), Reply::Error(e) if e.starts_with("ERR Protocol error")));
    assert_eq!(bad.try_read(), None);
    assert_eq!(c.run("PING"), Reply::Simple("PONG".into()));
}

#[test]
fn any_server_answers_for_any_key_by_forwarding() {
    let cluster = Cluster::start(21300, 3, 1);
    let names = ["s1", "s2", "s3"];
    let mut conns: Vec<Resp> = names.iter().map(|n| Resp::connect(&cluster.addr(n))).collect();
    let topo = failgroup_model::ClusterSpec::local(3, 1, 21301, failgroup_model::SLOTS).validate().unwrap();
    // Keys owned by each server, written through every server, read back
    // through every server.
    let mut keys = Vec::new();
    for owner in 0..3u16 {
        let k = (0..).map(|i| format!("key{i}")).find(|k| topo.owner(topo.slot(k.as_bytes())).0 == owner).unwrap();
        keys.push(k);
    }
    for (w, writer) in names.iter().enumerate() {
        for k in &keys {
            let v = format!("{k}-by-{writer}");
            assert_eq!(conns[w].run(&format!("SET {k} {v}")), ok());
            for (r, reader) in names.iter().enumerate() {
                assert_eq!(conns[r].run(&format!("GET {k}")), bulk(&v), "GET {k} via {reader}");
            }
        }
    }
    // A starting server takes its rights a batch at a time: on a loaded
    // machine the last batches may still be coming.
    cluster.wait_serving_own_slots();
    // Every server forwarded the keys it does not own.
    for (i, name) in names.iter().enumerate() {
        let forwarded: u64 = info_field(&mut conns[i], "failgroup", "requests_forwarded").unwrap().parse().unwrap();
        assert!(forwarded >= 2 * 4, "{name} forwarded {forwarded} requests");
        let owned: u64 = info_field(&mut conns[i], "failgroup", "slots_owned").unwrap().parse().unwrap();
        let served: u64 = info_field(&mut conns[i], "failgroup", "slots_served").unwrap().parse().unwrap();
        assert_eq!(served, owned, "{name} serves exactly its own slots");
    }
}

/// CLIENT LIST, INFO and KILL over the server's RESP connections.
#[test]
fn client_list_info_and_kill() {
    let cluster = Cluster::start(21140, 2, 1);
    let mut a = Resp::connect(&cluster.addr("s1"));
    let mut b = Resp::connect(&cluster.addr("s1"));
    assert_eq!(a.run("CLIENT SETNAME first"), ok());
    assert_eq!(b.run("CLIENT SETNAME second"), ok());
    // Redis 7.2's NO-TOUCH, accepted as 7.2 answers it.
    assert_eq!(a.run("CLIENT NO-TOUCH on"), ok());
    assert_eq!(a.run("CLIENT NO-TOUCH OFF"), ok());
    assert_eq!(a.run("CLIENT NO-TOUCH maybe"), Reply::Error("ERR syntax error".into()));
    assert_eq!(
        a.run("CLIENT NO-TOUCH"),
        Reply::Error("ERR wrong number of arguments for 'client|no-touch' command".into())
    );
    let Reply::Int(b_id) = b.run("CLIENT ID") else { panic!("an id") };
    let text = |r: Reply| match r {
        Reply::Bulk(Some(t)) | Reply::Verbatim(t) => String::from_utf8(t).unwrap(),
        other => panic!("text: {other:?}"),
    };
    let list = text(a.run("CLIENT LIST"));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(" name=first ") && list.contains(" name=second "), "{list}");
    assert!(list.lines().all(|l| l.starts_with("id=") && l.contains(" user=default redir=-1 resp=2")), "{list}");
    let info = text(a.run("CLIENT INFO"));
    assert!(info.contains(" name=first ") && info.contains(" cmd=client|info ") && info.ends_with('\n'), "{info}");
    let only_b = text(a.run(&format!("CLIENT LIST ID {b_id}")));
    assert!(only_b.contains(" name=second ") && only_b.lines().count() == 1, "{only_b}");
    assert_eq!(a.run("CLIENT LIST TYPE pubsub"), bulk(""));
    // SKIPME yes by default: killing by this server's address spares the caller.
    let Reply::Int(killed) = a.run(&format!("CLIENT KILL ID {b_id}")) else { panic!("a count") };
    assert_eq!(killed, 1);
    assert!(b.closed_within(std::time::Duration::from_secs(5)), "the killed connection is closed");
    assert_eq!(err(a.run("CLIENT KILL 1.2.3.4:5")), "ERR No such client");
    assert_eq!(a.run("PING"), Reply::Simple("PONG".into()), "the caller lives on");
}

/// A deep pipeline through a server that owns a third of its keys: the
/// commands on different keys run at once, yet every reply comes back in
/// the order of the commands, and the commands on one key take effect in
/// their order (each GET sees the INCR just before it on its key), around
/// an error, a local command and a multi-key command that wait their turn.
#[test]
fn a_pipeline_answers_in_order_and_keeps_each_keys_order() {
    let cluster = Cluster::start(21160, 3, 1);
    let mut c = Resp::connect(&cluster.addr("s1"));
    let mut out = Vec::new();
    let mut want = Vec::new();
    let send = |out: &mut Vec<u8>, line: &str| {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        failgroup::resp::encode_command(out, &args);
    };
    for round in 1..=4 {
        for i in 0..60 {
            send(&mut out, &format!("INCR pk{i}"));
            want.push(Reply::Int(round));
            send(&mut out, &format!("GET pk{i}"));
            want.push(bulk(&round.to_string()));
            if i == 30 {
                send(&mut out, "GET a b");
                want.push(Reply::Error("ERR wrong number of arguments for 'get' command".into()));
                send(&mut out, "PING");
                want.push(Reply::Simple("PONG".into()));
                send(&mut out, "MGET pk0 pk59");
                let after = |k: i64| if k <= 30 { round } else { round - 1 };
                let v = |n: i64| if n == 0 { Reply::Bulk(None) } else { bulk(&n.to_string()) };
                want.push(Reply::Array(Some(vec![v(after(0)), v(after(59))])));
            }
        }
    }
    c.send_raw(&out);
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&c.read(), w, "reply {i}");
    }
}
