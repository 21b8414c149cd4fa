//! Users (issue 18): `AUTH user password` and `HELLO ... AUTH` against the
//! config's `[[users]]`, `ACL WHOAMI`, `ACL LIST`, disabled and read-only
//! users, Redis's errors (`WRONGPASS`, `NOPERM`, as redis-server 7.0.15
//! writes them), and the wait after a failed AUTH.

use failgroup::resp::Reply;
use failgroup_tests::{Cluster, Resp};
use std::time::{Duration, Instant};

const USERS: &str = r#"
[[users]]
name = "app"
password = "secret"
[[users]]
name = "ro"
password = "pw"
readonly = true
[[users]]
name = "off"
password = "x"
enabled = false
"#;

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn err(text: &str) -> Reply {
    Reply::Error(text.into())
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

#[test]
fn users_log_in_read_only_ones_cannot_write_and_failures_wait() {
    let cluster = Cluster::with_config(24620, 2, "secret = \"sesame\"", USERS);
    let mut c = Resp::connect(&cluster.addr("s1"));
    // No requirepass: the default user needs no password.
    assert_eq!(c.run("ACL WHOAMI"), failgroup_tests::bulk("default"));
    assert_eq!(c.run("SET k v0"), ok());

    // A read-only user reads and is refused writes, in a transaction too.
    assert_eq!(c.run("AUTH ro pw"), ok());
    assert_eq!(c.run("ACL WHOAMI"), failgroup_tests::bulk("ro"));
    assert_eq!(c.run("GET k"), failgroup_tests::bulk("v0"));
    assert_eq!(c.run("SET k v1"), err("NOPERM this user has no permissions to run the 'set' command"));
    assert_eq!(c.run("DEL k"), err("NOPERM this user has no permissions to run the 'del' command"));
    assert_eq!(c.run("MULTI"), ok());
    assert_eq!(c.run("INCR n"), err("NOPERM this user has no permissions to run the 'incr' command"));
    assert!(matches!(c.run("EXEC"), Reply::Error(e) if e.starts_with("EXECABORT")));
    assert!(matches!(c.run("CLIENT LIST"), Reply::Bulk(Some(b)) if String::from_utf8_lossy(&b).contains(" user=ro ")));

    // A full user writes; the value is the one the read-only user could not change.
    assert_eq!(c.run("AUTH app secret"), ok());
    assert_eq!(c.run("GET k"), failgroup_tests::bulk("v0"));
    assert_eq!(c.run("SET k v2"), ok());

    // Wrong password, disabled or unknown user: WRONGPASS, and the
    // connection's next command waits (100 ms per failure so far).
    for line in ["AUTH app nope", "AUTH off x", "AUTH nosuch x"] {
        assert_eq!(c.run(line), err(WRONGPASS), "{line}");
    }
    let t = Instant::now();
    assert_eq!(c.run("PING"), Reply::Simple("PONG".into()));
    assert!(t.elapsed() >= Duration::from_millis(250), "held {:?} after three failures", t.elapsed());
    assert_eq!(c.run("ACL WHOAMI"), failgroup_tests::bulk("app"), "a failed AUTH leaves the user logged in");

    // HELLO's AUTH, on another server.
    let mut h = Resp::connect(&cluster.addr("s2"));
    assert!(matches!(h.run("HELLO 3 AUTH ro pw"), Reply::Map(_)));
    assert_eq!(h.run("ACL WHOAMI"), failgroup_tests::bulk("ro"));
    assert_eq!(h.run("HELLO 3 AUTH off x"), err(WRONGPASS));
    assert_eq!(h.run("AUTH a b c"), err("ERR syntax error"));
    assert_eq!(h.run("ACL FOO"), err("ERR unknown subcommand 'FOO'. Try ACL HELP."));
    let Reply::Array(Some(lines)) = h.run("ACL LIST") else { panic!("ACL LIST: an array") };
    let lines: Vec<String> = lines
        .iter()
        .map(|l| match l {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    // As redis-server 7.0.15 lists `ACL SETUSER app on >secret ~* &* +@all`.
    assert_eq!(lines[0], "user app on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b ~* &* +@all");
    assert_eq!(lines[1], "user default on nopass ~* &* +@all");
    assert!(lines[2].starts_with("user off off #") && lines[3].starts_with("user ro on #"), "{lines:?}");

    // redis-py at its defaults, with a user name and password.
    let py = std::env::var("FAILGROUP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys, redis\n\
                  r = redis.Redis(port=int(sys.argv[1]), username='ro', password='pw')\n\
                  assert r.acl_whoami() == 'ro' and r.get('k') == b'v2'\n\
                  try:\n    r.set('k', 'x'); sys.exit('a read-only user wrote')\n\
                  except redis.exceptions.NoPermissionError: pass\n\
                  try:\n    redis.Redis(port=int(sys.argv[1]), username='app', password='no').ping(); sys.exit('logged in')\n\
                  except redis.exceptions.AuthenticationError: pass\n\
                  print('ok')\n";
    let port = cluster.addr("s1").rsplit(':').next().expect("a port").to_string();
    match std::process::Command::new(&py).args(["-c", script, &port]).output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim_end().ends_with("ok") => {}
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named 'redis'") => {
            assert!(std::env::var_os("FAILGROUP_REQUIRE_CLIENTS").is_none(), "redis-py is required");
            eprintln!("note: {py} has no redis-py: skipped");
        }
        other => panic!("redis-py: {other:?}"),
    }
}

/// Users need the nodes' secret (the node protocol would bypass them), and
/// a bad user is refused at start with the field named.
#[test]
fn a_config_with_users_needs_the_secret_and_valid_names() {
    let cluster = "[cluster]\n[[cluster.servers]]\nname = \"s1\"\naddr = \"127.0.0.1:7101\"\n\
                   [[cluster.groups]]\nname = \"g1\"\nmembers = [\"s1\"]\n";
    let load = |text: String| failgroup::config::Config::parse(&text, std::env::temp_dir()).map(drop);
    let e = load(format!("master = \"127.0.0.1:7100\"\n{USERS}{cluster}")).unwrap_err().to_string();
    assert!(e.contains("secret"), "{e}");
    let with = |users: &str| load(format!("master = \"127.0.0.1:7100\"\nsecret = \"s\"\n{users}{cluster}"));
    assert!(with(USERS).is_ok());
    for (users, field) in [
        ("[[users]]\nname = \"default\"\n", "users[0].name"),
        ("[[users]]\nname = \"a b\"\n", "users[0].name"),
        ("[[users]]\nname = \"a\"\n[[users]]\nname = \"a\"\n", "users[1].name"),
        ("[[users]]\nname = \"a\"\nadmin = true\n", "admin"),
    ] {
        let e = with(users).unwrap_err().to_string();
        assert!(e.contains(field), "{users}: {e}");
    }
}
