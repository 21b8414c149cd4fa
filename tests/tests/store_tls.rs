//! Issue 18: the PostgreSQL store over TLS, as libpq's URLs ask for it
//! (`sslmode=disable/prefer/require/verify-ca/verify-full`,
//! `sslrootcert=`), and the URL forms that follow a PostgreSQL failover
//! (several hosts, `target_session_attrs=read-write`). The test's
//! PostgreSQL (`FAILGROUP_TEST_PG`, tests/scripts/postgres.sh) is given a
//! certificate this test makes for `localhost` and turned to TLS with
//! `ALTER SYSTEM` (undone at the end); then a cluster runs on it with
//! `verify-full`. Its own test binary: nothing else uses that server's TLS
//! settings meanwhile.

use failgroup::store::postgres::protocol::{test_database, PgConn, PgUrl, SslMode};
use failgroup_tests::{Cluster, Resp, TestStore};
use std::path::Path;
use std::time::{Duration, Instant};

/// A CA and a certificate it signed for `localhost` only, in `dir`; and a
/// second CA that signed nothing here.
fn make_certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let ca = |cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = p.self_signed(&key).unwrap();
        (cert, rcgen::Issuer::new(p, key))
    };
    let (ca_cert, issuer) = ca("failgroup test CA");
    let (other_ca, _) = ca("another CA");
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("other-ca.pem", other_ca.pem()),
        ("server.pem", server.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

/// The admin connection's server with TLS on (its files given to the
/// server's own user), and off again when dropped.
struct TlsOn {
    admin: PgUrl,
}

impl TlsOn {
    fn new(admin: &PgUrl, certs: &Path) -> TlsOn {
        let mut c = PgConn::connect(&PgUrl { sslmode: SslMode::Disable, ..admin.clone() }).unwrap();
        // The key must be the server user's and private to it.
        let data = c.query("SELECT current_setting('data_directory')::bytea", &[]).unwrap();
        let data = String::from_utf8(data[0].bytes(0).unwrap().unwrap()).unwrap();
        let meta = std::fs::metadata(&data).expect("the data directory (a server on this host)");
        let (uid, gid) = (std::os::unix::fs::MetadataExt::uid(&meta), std::os::unix::fs::MetadataExt::gid(&meta));
        for f in ["server.pem", "server.key"] {
            let p = std::ffi::CString::new(certs.join(f).to_str().unwrap()).unwrap();
            // SAFETY: chown(2) on a path we made; no memory is shared.
            unsafe { libc::chown(p.as_ptr(), uid, gid) };
        }
        std::fs::set_permissions(certs.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        std::fs::set_permissions(certs, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let (cert, key) = (certs.join("server.pem"), certs.join("server.key"));
        // One statement each: ALTER SYSTEM runs outside a transaction only.
        c.batch(&format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert.display())).unwrap();
        c.batch(&format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display())).unwrap();
        c.batch("ALTER SYSTEM SET ssl = on").unwrap();
        c.batch("SELECT pg_reload_conf()").unwrap();
        TlsOn { admin: admin.clone() }
    }
}

impl Drop for TlsOn {
    fn drop(&mut self) {
        if let Ok(mut c) = PgConn::connect(&PgUrl { sslmode: SslMode::Disable, ..self.admin.clone() }) {
            for setting in ["ssl", "ssl_cert_file", "ssl_key_file"] {
                let _ = c.batch(&format!("ALTER SYSTEM RESET {setting}"));
            }
            let _ = c.batch("SELECT pg_reload_conf()");
        }
    }
}

/// Whether the session is encrypted, as the server sees it.
fn server_says_tls(c: &mut PgConn) -> bool {
    let sql = "SELECT count(*)::int8 FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl";
    c.query(sql, &[]).unwrap()[0].int_req(0).unwrap() == 1
}

fn url(base: &PgUrl, host: &str, mode: SslMode, ca: Option<&Path>) -> PgUrl {
    let hosts = vec![(host.to_string(), base.port)];
    let sslrootcert = ca.map(|p| p.display().to_string());
    PgUrl { host: host.to_string(), hosts, sslmode: mode, sslrootcert, ..base.clone() }
}

#[test]
fn the_store_over_tls_as_libpq_urls_ask_and_a_failover_url() {
    let Some(db) = test_database("fg_tls") else { return };
    let certs = std::env::temp_dir().join(format!("failgroup-pgtls-{}", std::process::id()));
    make_certs(&certs);
    let _tls = TlsOn::new(&db, &certs);
    let (ca, other) = (certs.join("ca.pem"), certs.join("other-ca.pem"));

    // The reload takes a moment: wait until a TLS session is had.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        match PgConn::connect(&url(&db, "localhost", SslMode::VerifyFull, Some(&ca))) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for TLS: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("verify-full to localhost with the right CA: {e}"),
        }
    };
    assert!(c.is_tls() && server_says_tls(&mut c), "verify-full: an encrypted session");

    // verify-ca checks the chain only; verify-full the name too (the
    // certificate is for localhost, not 127.0.0.1).
    let mut c = PgConn::connect(&url(&db, "127.0.0.1", SslMode::VerifyCa, Some(&ca))).expect("verify-ca by address");
    assert!(server_says_tls(&mut c));
    let e = PgConn::connect(&url(&db, "127.0.0.1", SslMode::VerifyFull, Some(&ca))).err().expect("a name mismatch");
    assert!(e.to_string().contains("certificate"), "{e}");
    // A CA that did not sign it: refused in both.
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
        let e = PgConn::connect(&url(&db, "localhost", mode, Some(&other))).err().expect("an unknown issuer");
        assert!(e.to_string().contains("certificate"), "{mode:?}: {e}");
    }
    // require encrypts without checking; prefer (libpq's default) takes TLS
    // where offered; disable stays plain.
    for (mode, tls) in [(SslMode::Require, true), (SslMode::Prefer, true), (SslMode::Disable, false)] {
        let mut c = PgConn::connect(&url(&db, "127.0.0.1", mode, None)).unwrap();
        assert_eq!((c.is_tls(), server_says_tls(&mut c)), (tls, tls), "{mode:?}");
    }
    let parsed = PgUrl::parse(&format!(
        "postgres://{}@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
        db.user,
        db.port,
        db.dbname,
        ca.display()
    ))
    .unwrap();
    assert!(PgConn::connect(&parsed).unwrap().is_tls(), "the URL form");

    // Several hosts: a dead one first, then the server. With
    // target_session_attrs=read-write, a database whose sessions are
    // read-only is passed over (here the only one: refused, naming it).
    let two = PgUrl { hosts: vec![("127.0.0.1".into(), 1), ("127.0.0.1".into(), db.port)], ..db.clone() };
    PgConn::connect(&two).expect("the second host");
    let mut admin = PgConn::connect(&db).unwrap();
    admin.batch(&format!("ALTER DATABASE {} SET default_transaction_read_only = on", db.dbname)).unwrap();
    let rw = PgUrl { read_write: true, ..two.clone() };
    let e = PgConn::connect(&rw).err().expect("no read-write host");
    assert!(e.to_string().contains("read-only") && e.to_string().contains("127.0.0.1:1"), "{e}");
    PgConn::connect(&two).expect("target_session_attrs=any takes it");
    admin.batch(&format!("ALTER DATABASE {} RESET default_transaction_read_only", db.dbname)).unwrap();
    PgConn::connect(&rw).expect("read-write again");

    // A cluster on the store with verify-full and two hosts.
    let store = PgUrl {
        hosts: vec![("localhost".into(), 1), ("localhost".into(), db.port)],
        host: "localhost".into(),
        sslmode: SslMode::VerifyFull,
        sslrootcert: Some(ca.display().to_string()),
        read_write: true,
        ..test_database("fg_tls_cluster").unwrap()
    };
    let hosts = vec![("127.0.0.1".to_string(), None); 3];
    let cluster = Cluster::on_hosts_with(24880, &hosts, "", "", TestStore::Postgres(store.clone()));
    let mut r = Resp::connect(&cluster.addr("s1"));
    for i in 0..20 {
        assert_eq!(r.run(&format!("SET tls{i} v{i}")), failgroup_tests::ok());
    }
    let mut r2 = Resp::connect(&cluster.addr("s2"));
    for i in 0..20 {
        assert_eq!(r2.run(&format!("GET tls{i}")), failgroup_tests::bulk(&format!("v{i}")));
    }
    // Every session of the cluster's database is encrypted.
    let mut admin = PgConn::connect(&db).unwrap();
    let sql = "SELECT count(*)::int8 FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
               WHERE a.datname = 'fg_tls_cluster' AND NOT s.ssl";
    assert_eq!(admin.query(sql, &[]).unwrap()[0].int_req(0).unwrap(), 0, "a plain session on the cluster's store");
    let sql = "SELECT count(*)::int8 FROM pg_stat_activity WHERE datname = 'fg_tls_cluster'";
    assert!(admin.query(sql, &[]).unwrap()[0].int_req(0).unwrap() >= 2, "the servers' sessions");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&certs);
}
