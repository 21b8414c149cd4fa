//! Issue 18: RESP over TLS (`[tls]`, rustls) with certificates this test
//! makes (a CA, the servers' certificate for 127.0.0.1, a client's):
//! redis-cli `--tls` and redis-py `ssl=True` read and write keys of every
//! owner through one server's TLS address, and redis-py's cluster client
//! finds every server's TLS address in CLUSTER SLOTS; a client without a certificate
//! is refused where one is required and served where it is optional; a
//! plain-text client on a TLS address is closed at once, and the plain
//! address keeps serving beside it; bad TLS files stop a server with their
//! name.

use failgroup::net::tls::ClientTls;
use failgroup::net::wire::{Msg, Peer};
use failgroup::net::NodeLink;
use failgroup::ClientOptions;
use failgroup_model::ServerId;
use failgroup_tests::{failgroup_command, node_hello, Cluster, Resp};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A CA, a server certificate it signed (127.0.0.1 and localhost), and a
/// client certificate it signed, as PEM files in `dir`.
fn make_certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "failgroup test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["client".to_string()]).unwrap();
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();
    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", server_cert.pem()),
        ("server.key", server_key.serialize_pem()),
        ("client.pem", client_cert.pem()),
        ("client.key", client_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

/// The `[tls]` table: every server on its port plus 20.
fn tls_toml(dir: &Path, port: u16, servers: u16, auth: &str) -> String {
    tls_toml_with(dir, port, servers, auth, "")
}

/// The same with `more` settings of `[tls]`.
fn tls_toml_with(dir: &Path, port: u16, servers: u16, auth: &str, more: &str) -> String {
    let d = dir.display();
    let mut t = format!(
        "[tls]\ncert_file = \"{d}/server.pem\"\nkey_file = \"{d}/server.key\"\nca_file = \"{d}/ca.pem\"\n\
         auth_clients = \"{auth}\"\n{more}\n[tls.servers]\n"
    );
    for i in 1..=servers {
        t += &format!("s{i} = \"127.0.0.1:{}\"\n", port + i + 20);
    }
    t
}

fn redis_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new("redis-cli").args(args).output().expect("redis-cli runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn tls_cli(certs: &Path, port: u16, client_cert: bool, cmd: &[&str]) -> (bool, String) {
    let (ca, cert, key) = (certs.join("ca.pem"), certs.join("client.pem"), certs.join("client.key"));
    let port = port.to_string();
    let mut args = vec!["-h", "127.0.0.1", "-p", &port, "--tls", "--cacert", ca.to_str().unwrap()];
    if client_cert {
        args.extend(["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    }
    args.extend(cmd);
    redis_cli(&args)
}

/// redis-py over TLS: reads what redis-cli wrote, writes its own.
const PY_TLS: &str = r#"
import sys, redis
port, d = int(sys.argv[1]), sys.argv[2]
r = redis.Redis(host='127.0.0.1', port=port, ssl=True, ssl_ca_certs=d + '/ca.pem',
                ssl_certfile=d + '/client.pem', ssl_keyfile=d + '/client.key')
for i in range(30):
    assert r.get(f'tls:{i}') == f'v{i}'.encode(), i
    assert r.set(f'py:{i}', i)
assert r.incr('py:counter') == 1
# The cluster client: CLUSTER SLOTS over TLS gives the TLS addresses, and
# it reads every key from the server that serves it.
tls_ports = sorted(int(p) for p in sys.argv[3].split(','))
c = redis.RedisCluster(host='127.0.0.1', port=port, ssl=True, ssl_ca_certs=d + '/ca.pem',
                       ssl_certfile=d + '/client.pem', ssl_keyfile=d + '/client.key')
assert sorted({n.port for n in c.get_nodes()}) == tls_ports, c.get_nodes()
for i in range(30):
    assert c.get(f'py:{i}') == str(i).encode(), i
print('ok')
"#;

#[test]
fn redis_cli_and_redis_py_over_tls_and_a_plain_client_refused() {
    let port = 24800;
    let certs = std::env::temp_dir().join(format!("failgroup-tls-{port}-{}", std::process::id()));
    make_certs(&certs);
    let cluster = Cluster::with_config(port, 3, "", &tls_toml(&certs, port, 3, "yes"));
    let tls_port = port + 1 + 20; // s1's

    // redis-cli with a client certificate: keys of every owner through s1
    // (two thirds forwarded), written and read back.
    for i in 0..30 {
        let (k, v) = (format!("tls:{i}"), format!("v{i}"));
        let (ok, out) = tls_cli(&certs, tls_port, true, &["SET", &k, &v]);
        assert!(ok && out.trim() == "OK", "SET {k} over TLS: {out}");
        let (ok, out) = tls_cli(&certs, tls_port, true, &["GET", &k]);
        assert!(ok && out.trim() == v, "GET {k} over TLS: {out}");
    }
    // The plain address serves the same keys beside it, and gives the
    // plain addresses in CLUSTER SLOTS where a TLS client gets the TLS ones.
    let mut plain = Resp::connect(&cluster.addr("s2"));
    assert_eq!(plain.run("GET tls:7"), failgroup_tests::bulk("v7"));
    let slots = format!("{:?}", plain.run("CLUSTER SLOTS"));
    assert!(slots.contains(&format!("Int({})", port + 1)) && !slots.contains(&format!("Int({tls_port})")), "{slots}");
    let (ok, out) = tls_cli(&certs, tls_port, true, &["CLUSTER", "SLOTS"]);
    assert!(ok && out.lines().any(|l| l.trim() == tls_port.to_string()), "{out}");
    assert!(!out.lines().any(|l| l.trim() == (port + 1).to_string()), "{out}");

    // No client certificate where one is required: refused in the
    // handshake, no command runs.
    let (_, out) = tls_cli(&certs, tls_port, false, &["SET", "tls:nocert", "x"]);
    assert!(!out.contains("OK"), "served without a client certificate: {out}");
    assert_eq!(plain.run("EXISTS tls:nocert"), failgroup::resp::Reply::Int(0));

    // A plain-text client on the TLS address is closed at once (its bytes
    // are not TLS), and the server goes on serving.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    std::io::Write::write_all(&mut s, b"*1\r\n$4\r\nPING\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut got);
    assert!(started.elapsed() < Duration::from_secs(4), "the plain client was kept waiting");
    assert!(!String::from_utf8_lossy(&got).contains("PONG"), "a plain client was served on the TLS address");
    let (ok, out) = redis_cli(&["-h", "127.0.0.1", "-p", &tls_port.to_string(), "PING"]);
    assert!(!ok || !out.contains("PONG"), "redis-cli without --tls was served: {out}");
    let (ok, out) = tls_cli(&certs, tls_port, true, &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");

    // redis-py with ssl=True and a client certificate, through s2's TLS
    // address, at its defaults otherwise.
    let py = std::env::var("FAILGROUP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PY_TLS;
    let tls_ports: Vec<String> = (1..=3).map(|i| (port + i + 20).to_string()).collect();
    let out = Command::new(&py)
        .args(["-c", script, &(port + 2 + 20).to_string()])
        .arg(&certs)
        .arg(tls_ports.join(","))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("No module named 'redis'") {
        assert!(std::env::var_os("FAILGROUP_REQUIRE_CLIENTS").is_none(), "redis-py is required: {text}");
        eprintln!("note: {py} has no redis-py: its part is skipped");
    } else {
        assert!(out.status.success() && text.trim_end().ends_with("ok"), "redis-py over TLS: {text}");
        assert_eq!(plain.run("GET py:29"), failgroup_tests::bulk("29"));
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn optional_client_certificates_and_bad_tls_files() {
    let port = 24840;
    let certs = std::env::temp_dir().join(format!("failgroup-tls-{port}-{}", std::process::id()));
    make_certs(&certs);
    let cluster = Cluster::with_config(port, 1, "", &tls_toml(&certs, port, 1, "optional"));
    let tls_port = port + 1 + 20;
    let (ok, out) = tls_cli(&certs, tls_port, false, &["SET", "opt", "1"]);
    assert!(ok && out.trim() == "OK", "optional: served without a certificate: {out}");
    let (ok, out) = tls_cli(&certs, tls_port, true, &["GET", "opt"]);
    assert!(ok && out.trim() == "1", "optional: served with one: {out}");
    drop(cluster);

    // A key file that is not a key: the server refuses to start, naming
    // the setting and the file.
    std::fs::write(certs.join("bad.key"), "not a key\n").unwrap();
    let dir = certs.join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "master = \"127.0.0.1:{port}\"\nstore = \"sqlite:data.db\"\n{}\n[cluster]\n\
         [[cluster.servers]]\nname = \"s1\"\naddr = \"127.0.0.1:{}\"\n\
         [[cluster.groups]]\nname = \"g1\"\nmembers = [\"s1\"]\n",
        tls_toml(&certs, port, 1, "no").replace("server.key", "bad.key"),
        port + 1
    );
    std::fs::write(dir.join("cluster.toml"), toml).unwrap();
    let out = failgroup_command()
        .args(["server", "--config"])
        .arg(dir.join("cluster.toml"))
        .args(["--id", "s1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "started with a bad key: {text}");
    assert!(text.contains("tls.key_file") && text.contains("bad.key"), "{text}");
    let _ = std::fs::remove_dir_all(&certs);
}

/// `tls.nodes`: servers and the master link over mutual TLS on their own
/// addresses, with no `secret`. Requests forwarded between servers and a
/// failover after a `kill -9` (the master's probes and notices) work over
/// it; a plain-text hello claiming to be a server is refused, naming the
/// certificate; tools and RESP clients still connect as before.
#[test]
fn node_links_over_mutual_tls_replace_the_secret() {
    let port = 24870;
    let certs = std::env::temp_dir().join(format!("failgroup-tls-{port}-{}", std::process::id()));
    make_certs(&certs);
    let timing = "[timing]\nlease = 600\n";
    let tls = tls_toml_with(&certs, port, 3, "optional", "nodes = true");
    let mut cluster = Cluster::with_config(port, 3, "", &format!("{timing}{tls}"));
    let mut c = Resp::connect(&cluster.addr("s1"));
    // Keys of every owner through s1: two thirds forwarded over TLS links.
    for i in 0..60 {
        assert_eq!(c.run(&format!("SET node:{i} v{i}")), failgroup_tests::ok(), "SET node:{i}");
    }
    // A plain-text hello, as s2 or as a tool, from a node's own address:
    // refused, naming TLS; over TLS without a certificate, a hello as s2 is
    // refused naming the certificate.
    for to in [cluster.addr("s1"), cluster.master()] {
        for from in [Peer::Server(ServerId(1)), Peer::Admin] {
            let (_, answer) = node_hello("127.0.0.1".parse().unwrap(), &to, from, None);
            match answer {
                Some(Msg::Refused(why)) => assert!(why.contains("over TLS"), "{why}"),
                other => panic!("{to} answered a plain hello as {from:?}: {other:?}"),
            }
        }
        let no_cert = ClientTls::new(&certs.join("ca.pem"), None).expect("the CA");
        let t = Duration::from_secs(2);
        match NodeLink::open_with(&to, Peer::Server(ServerId(1)), None, t, Some(&no_cert)) {
            Err(e) => assert!(e.to_string().contains("certificate"), "{to}: {e}"),
            Ok(_) => panic!("{to} took a hello as s2 over TLS without a certificate"),
        }
    }
    // The library client: refused in plain text, naming TLS; with another
    // CA it refuses the servers' certificate.
    match failgroup::Client::connect(&cluster.addr("s1")) {
        Err(e) => assert!(e.to_string().contains("over TLS"), "{e}"),
        Ok(_) => panic!("a plain-text library client was admitted"),
    }
    let other = certs.join("other");
    make_certs(&other);
    let wrong = ClientOptions { secret: None, tls: Some(ClientTls::new(&other.join("ca.pem"), None).unwrap()) };
    match failgroup::Client::connect_opts(&cluster.addr("s1"), wrong) {
        Err(e) => assert!(e.to_string().contains("certificate"), "{e}"),
        Ok(_) => panic!("a server's certificate passed another CA's check"),
    }
    // kill -9 of s2: the master's probe over TLS finds it gone, its slots
    // fail over, and every key is read back through s3.
    cluster.kill9("s2");
    let mut r = Resp::connect(&cluster.addr("s3"));
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..60 {
        loop {
            let got = r.run(&format!("GET node:{i}"));
            if got == failgroup_tests::bulk(&format!("v{i}")) {
                break;
            }
            assert!(Instant::now() < deadline, "GET node:{i} after the kill: {got:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // A library client over TLS with the CA alone (no certificate of its
    // own: it claims no node) reads every key, s2's through the failover.
    let tls = ClientTls::new(&certs.join("ca.pem"), None).unwrap();
    let mut lib = failgroup::Client::connect_opts(&cluster.addr("s3"), ClientOptions { secret: None, tls: Some(tls) })
        .expect("a library client over TLS");
    for i in 0..60 {
        assert_eq!(lib.get(format!("node:{i}").as_bytes()).unwrap(), Some(format!("v{i}").into_bytes()));
    }
    lib.set(b"node:lib", b"over TLS").unwrap();
    assert_eq!(r.run("GET node:lib"), failgroup_tests::bulk("over TLS"));
    // A server starting asks the master for its topology over TLS (a
    // server added since the config was written joins by its name).
    let cfg = failgroup::config::Config::load(&cluster.dir.join("cluster.toml")).unwrap();
    let topology = failgroup::server::master_topology(&cfg).expect("the master's topology over TLS");
    assert_eq!(topology.server_count(), 3);
    // The status tool reads the config's [tls] and asks the master over TLS.
    let out = failgroup_command().args(["status", "--config"]).arg(cluster.dir.join("cluster.toml")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("s2"), "status: {text}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&certs);
}
