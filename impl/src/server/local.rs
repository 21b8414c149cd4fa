//! The commands a server answers itself (PING, ECHO, AUTH, HELLO, CLIENT,
//! CONFIG GET, DBSIZE, INFO, QUIT...): a pure function of the command, the
//! connection's session and a context, testable without sockets.

use super::clients::ClientRow;
use super::cluster::ClusterView;
use super::command_table::{Entry, TABLE};
use super::commands::{AclCmd, ClusterCmd, Local};
use super::session::{Multi, Session};
use crate::config::{CacheConfig, Limits, UserSpec};
use crate::net::wire::secret_matches;
use crate::resp::{reply, Proto};

/// The Redis version whose replies and command set failgroup follows:
/// HELLO and INFO report it, and the differential tests compare with it.
pub use crate::resp::REDIS_VERSION;

/// What a local command may read beyond its session.
pub(super) struct Context<'a> {
    pub requirepass: Option<&'a str>,
    /// The users beside `default`.
    pub users: &'a [UserSpec],
    pub limits: &'a Limits,
    pub cache: &'a CacheConfig,
    /// INFO's text, if the command is INFO.
    pub info: Option<String>,
    /// The cluster as this server sees it, if the command is CLUSTER.
    pub cluster: Option<ClusterView<'a>>,
    /// This server's RESP connections, if the command is CLIENT LIST or
    /// INFO (the caller's is the one of its session's id).
    pub clients: Vec<ClientRow>,
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Whether `user` with `pass` logs in, and whether it may only read:
/// `default` with `requirepass` (any password when none is configured, as
/// Redis's `nopass` default user), or an enabled user of the config with
/// its password.
fn logs_in(ctx: &Context, user: &[u8], pass: &[u8]) -> Option<bool> {
    let pass = std::str::from_utf8(pass).ok();
    if user == b"default" {
        return ctx.requirepass.is_none_or(|p| secret_matches(Some(p), pass)).then_some(false);
    }
    let u = ctx.users.iter().find(|u| u.name.as_bytes() == user)?;
    let ok = u.enabled && u.password.as_deref().is_none_or(|p| secret_matches(Some(p), pass));
    ok.then_some(u.readonly)
}

/// Logs `user` in on the session, or counts a failure (the connection's
/// next command waits).
fn log_in(s: &mut Session, ctx: &Context, user: &[u8], pass: &[u8]) -> bool {
    match logs_in(ctx, user, pass) {
        Some(readonly) => {
            s.authed = true;
            s.user = String::from_utf8_lossy(user).into_owned();
            s.readonly = readonly;
            true
        }
        None => {
            s.auth_failed();
            false
        }
    }
}

/// A user as ACL LIST shows it (Redis's form: `#` and the SHA-256 of the
/// password, or `nopass`; a read-only user may run every command but those
/// that write).
fn acl_line(name: &str, enabled: bool, password: Option<&str>, readonly: bool) -> String {
    use sha2::Digest;
    let pass = match password {
        Some(p) => sha2::Sha256::digest(p.as_bytes()).iter().fold(String::from("#"), |mut s, b| {
            s.push_str(&format!("{b:02x}"));
            s
        }),
        None => "nopass".into(),
    };
    let on = if enabled { "on" } else { "off" };
    let perms = if readonly { "+@all -@write" } else { "+@all" };
    format!("user {name} {on} {pass} ~* &* {perms}")
}

/// Whether the command `name` (lower case) writes: COMMAND INFO's `write`
/// flag, as Redis's table gives it.
pub(super) fn writes(name: &str) -> bool {
    const WRITE: &[u8] = b"+write\r\n";
    entry(name.as_bytes()).is_some_and(|e| e.1[0].windows(WRITE.len()).any(|w| w == WRITE))
}

/// Whether Redis's command table has `name` (`get`, or `client|list`'s
/// command `client`).
pub(super) fn known(name: &str) -> bool {
    entry(name.split('|').next().unwrap_or(name).as_bytes()).is_some()
}

/// Commands Redis never puts in the slow log (EXEC, AUTH, HELLO: their
/// `skip_slowlog` flag).
pub(super) fn skips_slowlog(name: &str) -> bool {
    const SKIP: &[u8] = b"+skip_slowlog\r\n";
    entry(name.split('|').next().unwrap_or(name).as_bytes())
        .is_some_and(|e| e.1[0].windows(SKIP.len()).any(|w| w == SKIP))
}

/// The table's entry of a command, by its name in any case.
fn entry(name: &[u8]) -> Option<&'static Entry> {
    TABLE.iter().find(|(n, ..)| n.as_bytes().eq_ignore_ascii_case(name))
}

/// A client name may not hold spaces, newlines or other special characters.
fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Writes the reply to `l` into `out`; whether the connection closes after it.
pub(super) fn answer(l: Local, s: &mut Session, ctx: &Context, out: &mut Vec<u8>) -> bool {
    let p = s.proto;
    match l {
        Local::Ping(None) => reply::simple(out, "PONG"),
        Local::Ping(Some(m)) | Local::Echo(m) => reply::bulk(out, &m),
        Local::Info(_) => reply::verbatim(out, ctx.info.clone().unwrap_or_default().as_bytes(), p),
        Local::Auth { user: None, .. } if ctx.requirepass.is_none() => reply::error(
            out,
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ),
        Local::Auth { user, pass } => match log_in(s, ctx, user.as_deref().unwrap_or(b"default"), &pass) {
            true => reply::ok(out),
            false => reply::error(out, WRONGPASS),
        },
        Local::Acl(AclCmd::WhoAmI) => reply::bulk(out, s.user.as_bytes()),
        Local::Acl(AclCmd::Users) => {
            let mut names: Vec<&str> = ctx.users.iter().map(|u| u.name.as_str()).chain(["default"]).collect();
            names.sort_unstable();
            reply::array(out, names.len());
            names.iter().for_each(|n| reply::bulk(out, n.as_bytes()));
        }
        Local::Acl(AclCmd::List) => {
            let mut lines: Vec<(String, String)> = ctx
                .users
                .iter()
                .map(|u| (u.name.clone(), acl_line(&u.name, u.enabled, u.password.as_deref(), u.readonly)))
                .chain([("default".to_string(), acl_line("default", true, ctx.requirepass, false))])
                .collect();
            lines.sort_unstable();
            reply::array(out, lines.len());
            lines.iter().for_each(|(_, l)| reply::bulk(out, l.as_bytes()));
        }
        Local::Select | Local::Ok => reply::ok(out),
        Local::Multi if s.multi.is_some() => reply::error(out, "ERR MULTI calls can not be nested"),
        Local::Multi => {
            s.multi = Some(Multi::default());
            reply::ok(out);
        }
        Local::Discard => match s.multi.take() {
            None => reply::error(out, "ERR DISCARD without MULTI"),
            Some(_) => {
                s.watched.clear();
                reply::ok(out)
            }
        },
        // An EXEC with commands queued or keys watched is the pipeline's
        // (one atomic operation through the core); here the others.
        Local::Exec => match s.multi.take() {
            None => reply::error(out, "ERR EXEC without MULTI"),
            Some(m) => {
                s.watched.clear();
                if m.dirty {
                    reply::error(out, "EXECABORT Transaction discarded because of previous errors.")
                } else {
                    // Nothing but UNWATCH queued: OK for each.
                    reply::array(out, m.cmds.len());
                    m.cmds.iter().for_each(|_| reply::ok(out));
                }
            }
        },
        Local::Unwatch => {
            s.watched.clear();
            reply::ok(out);
        }
        Local::Quit => {
            reply::ok(out);
            return true;
        }
        Local::Hello { proto, auth, setname } => {
            if let Some((user, pass)) = auth {
                if !log_in(s, ctx, &user, &pass) {
                    reply::error(out, WRONGPASS);
                    return false;
                }
            }
            if !s.authed {
                reply::error(
                    out,
                    "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                     HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
                     select the RESP protocol version at the same time",
                );
                return false;
            }
            if let Some(n) = setname {
                if !valid_name(&n) {
                    reply::error(out, BAD_NAME);
                    return false;
                }
                s.name = (!n.is_empty()).then_some(n);
            }
            if let Some(proto) = proto {
                s.proto = proto;
            }
            let p = s.proto;
            reply::map(out, 7, p);
            for (k, v) in [("server", "redis"), ("version", REDIS_VERSION)] {
                reply::bulk(out, k.as_bytes());
                reply::bulk(out, v.as_bytes());
            }
            reply::bulk(out, b"proto");
            reply::int(out, p.number());
            reply::bulk(out, b"id");
            reply::int(out, s.id as i64);
            for (k, v) in [("mode", "cluster"), ("role", "master")] {
                reply::bulk(out, k.as_bytes());
                reply::bulk(out, v.as_bytes());
            }
            reply::bulk(out, b"modules");
            reply::array(out, 0);
        }
        Local::Cluster(cmd) => {
            let Some(view) = &ctx.cluster else {
                reply::error(out, "ERR This instance has cluster support disabled");
                return false;
            };
            match cmd {
                ClusterCmd::Slots => view.slots(out, p),
                ClusterCmd::Shards => view.shards(out, p),
                ClusterCmd::Nodes => reply::verbatim(out, view.nodes().as_bytes(), p),
                ClusterCmd::Info => reply::verbatim(out, view.info().as_bytes(), p),
                ClusterCmd::MyId => reply::bulk(out, view.my_id().as_bytes()),
                ClusterCmd::KeySlot(key) => {
                    reply::int(out, failgroup_model::key_slot(&key, failgroup_model::SLOTS).0 as i64)
                }
            }
        }
        Local::ClientSetName(n) if !valid_name(&n) => reply::error(out, BAD_NAME),
        Local::ClientSetName(n) => {
            s.name = (!n.is_empty()).then_some(n);
            reply::ok(out);
        }
        Local::ClientGetName => reply::value(out, s.name.as_deref(), p),
        Local::ClientInfo => {
            let mine = ctx.clients.iter().find(|c| c.id == s.id).map(|c| c.line() + "\n").unwrap_or_default();
            reply::verbatim(out, mine.as_bytes(), p);
        }
        Local::ClientList(filter) => {
            let text: String = ctx
                .clients
                .iter()
                .filter(|c| filter.kind != Some(false) && filter.ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
                .map(|c| c.line() + "\n")
                .collect();
            reply::verbatim(out, text.as_bytes(), p);
        }
        // Carried out by the pipeline, which sees every connection.
        Local::ClientKill(_) => reply::error(out, "ERR CLIENT KILL is carried out by the server loop"),
        Local::Flush => reply::error(out, "ERR FLUSHDB is carried out by the server loop"),
        Local::ConfigSet(_) => reply::error(out, "ERR CONFIG SET is carried out by the server loop"),
        Local::Slowlog(_) => reply::error(out, "ERR SLOWLOG is carried out by the server loop"),
        Local::ClientId => reply::int(out, s.id as i64),
        Local::CommandInfo(names) => {
            let proto = (p == Proto::Resp3) as usize;
            match names {
                None => {
                    reply::array(out, TABLE.len());
                    TABLE.iter().for_each(|(_, info, _)| out.extend_from_slice(info[proto]));
                }
                Some(names) => {
                    reply::array(out, names.len());
                    for n in names {
                        match entry(&n) {
                            Some((_, info, _)) => out.extend_from_slice(info[proto]),
                            None => reply::null(out, p),
                        }
                    }
                }
            }
        }
        Local::CommandDocs(names) => {
            let proto = (p == Proto::Resp3) as usize;
            let found: Vec<_> = match names {
                None => TABLE.iter().collect(),
                Some(names) => names.iter().filter_map(|n| entry(n)).collect(),
            };
            // Each entry holds the command's name, then its docs.
            reply::map(out, found.len(), p);
            found.iter().for_each(|(_, _, docs)| out.extend_from_slice(docs[proto]));
        }
        Local::CommandList => {
            reply::array(out, TABLE.len());
            TABLE.iter().for_each(|(name, ..)| reply::bulk(out, name.as_bytes()));
        }
        Local::CommandCount => reply::int(out, TABLE.len() as i64),
        Local::ConfigGet(param) => {
            let limits = ctx.limits;
            let cache = ctx.cache;
            let known: [(&str, String); 13] = [
                ("slowlog-log-slower-than", limits.slowlog_log_slower_than.to_string()),
                ("slowlog-max-len", limits.slowlog_max_len.to_string()),
                ("maxclients", limits.maxclients.to_string()),
                ("requirepass", ctx.requirepass.unwrap_or_default().to_string()),
                ("loglevel", crate::util::log_level().to_string()),
                ("maxmemory", cache.maxmemory.0.to_string()),
                ("maxmemory-policy", cache.maxmemory_policy.to_string()),
                ("maxmemory-samples", cache.maxmemory_samples.to_string()),
                ("proto-max-bulk-len", limits.max_bulk.to_string()),
                ("timeout", limits.idle_timeout.to_string()),
                ("save", String::new()),
                ("appendonly", "no".into()),
                ("databases", "1".into()),
            ];
            let hits: Vec<&(&str, String)> =
                known.iter().filter(|(k, _)| failgroup_model::glob::matches(&param, k.as_bytes(), true)).collect();
            reply::map(out, hits.len(), p);
            for (k, v) in hits {
                reply::bulk(out, k.as_bytes());
                reply::bulk(out, v.as_bytes());
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{decode_reply, Reply};
    use failgroup_model::ClientId;

    fn session() -> Session {
        Session::new(ClientId(1), 7, false)
    }

    fn run(l: Local, s: &mut Session, requirepass: Option<&str>) -> (Reply, bool) {
        run_with(l, s, requirepass, &[])
    }

    fn run_with(l: Local, s: &mut Session, requirepass: Option<&str>, users: &[UserSpec]) -> (Reply, bool) {
        let (limits, cache) = (Limits::default(), CacheConfig::default());
        let ctx = Context {
            requirepass,
            users,
            limits: &limits,
            cache: &cache,
            info: Some("# Server\r\n".into()),
            cluster: None,
            clients: Vec::new(),
        };
        let mut out = Vec::new();
        let close = answer(l, s, &ctx, &mut out);
        let (reply, used) = decode_reply(&out).expect("a reply").expect("a whole reply");
        assert_eq!(used, out.len(), "one reply");
        (reply, close)
    }

    /// Every command the parser serves has Redis's COMMAND entry, and the
    /// table names no command it does not serve.
    #[test]
    fn the_command_table_is_the_commands_served() {
        use super::super::commands::{parse, CommandError};
        let topo = failgroup_model::ClusterSpec::local(3, 1, 7101, 16384).validate().unwrap();
        for (name, ..) in TABLE {
            let known = !matches!(parse(&[name.as_bytes().to_vec()], &topo), Err(CommandError::UnknownCommand { .. }));
            assert!(known, "{name} is in the table but not served");
        }
        for name in ["get", "hset", "lpush", "getdel", "multi", "cluster", "scan"] {
            let served = !matches!(parse(&[name.as_bytes().to_vec()], &topo), Err(CommandError::UnknownCommand { .. }));
            assert_eq!(served, entry(name.as_bytes()).is_some(), "{name}: served and in the table alike");
        }
        let mut s = session();
        assert_eq!(run(Local::CommandCount, &mut s, None).0, Reply::Int(TABLE.len() as i64));
        let Reply::Array(Some(infos)) =
            run(Local::CommandInfo(Some(vec![b"GET".to_vec(), b"nosuch".to_vec()])), &mut s, None).0
        else {
            panic!("an array")
        };
        assert!(matches!(&infos[0], Reply::Array(Some(e)) if e[0] == Reply::Bulk(Some(b"get".to_vec()))));
        assert_eq!(infos[1], Reply::Bulk(None), "nil, as Redis answers an unknown name");
    }

    #[test]
    fn auth_ping_dbsize_quit_without_sockets() {
        let mut s = session();
        let (r, _) = run(Local::Auth { user: None, pass: b"nope".to_vec() }, &mut s, Some("pw"));
        assert_eq!(r, Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into()));
        assert!(!s.authed);
        assert_eq!(
            run(Local::Auth { user: None, pass: b"pw".to_vec() }, &mut s, Some("pw")).0,
            Reply::Simple("OK".into())
        );
        assert!(s.authed);
        assert!(
            matches!(run(Local::Auth { user: None, pass: b"pw".to_vec() }, &mut s, None).0, Reply::Error(e) if e.starts_with("ERR AUTH"))
        );
        assert_eq!(run(Local::Ping(None), &mut s, None).0, Reply::Simple("PONG".into()));
        assert_eq!(run(Local::ClientId, &mut s, None).0, Reply::Int(7));
        assert_eq!(run(Local::Info(None), &mut s, None).0, Reply::Bulk(Some(b"# Server\r\n".to_vec())));
        assert_eq!(run(Local::Quit, &mut s, None), (Reply::Simple("OK".into()), true));
    }

    #[test]
    fn config_get_answers_matching_pairs() {
        let mut s = session();
        let Reply::Array(Some(pairs)) = run(Local::ConfigGet(b"max*".to_vec()), &mut s, None).0 else {
            panic!("an array")
        };
        let names: Vec<&Reply> = pairs.iter().step_by(2).collect();
        let bulk = |s: &str| Reply::Bulk(Some(s.as_bytes().to_vec()));
        let want = ["maxclients", "maxmemory", "maxmemory-policy", "maxmemory-samples"].map(bulk);
        assert_eq!(names, want.iter().collect::<Vec<_>>());
        assert_eq!(pairs[5], bulk("noeviction"));
    }

    fn users() -> Vec<UserSpec> {
        let user = |name: &str, password: Option<&str>, enabled, readonly| UserSpec {
            name: name.into(),
            password: password.map(str::to_string),
            enabled,
            readonly,
        };
        vec![
            user("app", Some("secret"), true, false),
            user("ro", Some("pw"), true, true),
            user("off", Some("x"), false, false),
        ]
    }

    fn auth(user: &str, pass: &str) -> Local {
        Local::Auth { user: Some(user.as_bytes().to_vec()), pass: pass.as_bytes().to_vec() }
    }

    #[test]
    fn users_log_in_with_their_passwords_and_acl_says_who() {
        let users = users();
        let mut s = session();
        let wrongpass = Reply::Error(WRONGPASS.into());
        for (user, pass) in [("app", "nope"), ("off", "x"), ("nosuch", "x"), ("default", "x")] {
            assert_eq!(run_with(auth(user, pass), &mut s, Some("pw0"), &users).0, wrongpass, "{user}");
            assert!(!s.authed && s.held_until.is_some(), "{user}: refused, and the connection waits");
        }
        assert_eq!(s.auth_failures, 4);
        assert_eq!(run_with(auth("ro", "pw"), &mut s, Some("pw0"), &users).0, Reply::Simple("OK".into()));
        assert!(s.authed && s.readonly);
        assert_eq!(
            run_with(Local::Acl(AclCmd::WhoAmI), &mut s, Some("pw0"), &users).0,
            Reply::Bulk(Some(b"ro".to_vec()))
        );
        assert_eq!(run_with(auth("app", "secret"), &mut s, Some("pw0"), &users).0, Reply::Simple("OK".into()));
        assert!(!s.readonly, "another user, another flag");
        let (list, _) = run_with(Local::Acl(AclCmd::List), &mut s, None, &users);
        let line = |i: usize| match &list {
            Reply::Array(Some(items)) => match &items[i] {
                Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        // Redis 7.0.15's line for `ACL SETUSER app on >secret ~* &* +@all`.
        assert_eq!(
            line(0),
            "user app on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b ~* &* +@all"
        );
        assert_eq!(line(1), "user default on nopass ~* &* +@all");
        assert!(line(2).starts_with("user off off #"));
        assert!(line(3).starts_with("user ro on #") && line(3).ends_with(" +@all -@write"));
        // HELLO's AUTH logs in the same way.
        let mut s = session();
        let hello =
            Local::Hello { proto: Some(Proto::Resp3), auth: Some((b"ro".to_vec(), b"pw".to_vec())), setname: None };
        assert!(matches!(run_with(hello, &mut s, Some("pw0"), &users).0, Reply::Map(_)));
        assert_eq!((s.user.as_str(), s.readonly), ("ro", true));
    }

    #[test]
    fn writes_are_known_from_redis_command_table() {
        for w in ["set", "del", "incrby", "hset", "append", "flushdb", "rename", "msetnx", "expire"] {
            assert!(writes(w), "{w} writes");
        }
        for r in ["get", "mget", "hgetall", "ttl", "ping", "auth", "acl", "info", "scan", "multi"] {
            assert!(!writes(r), "{r} does not write");
        }
    }
}
