//! The commands a server answers itself (PING, ECHO, AUTH, HELLO, CLIENT,
//! CONFIG GET, DBSIZE, INFO, QUIT...): a pure function of the command, the
//! connection's session and a context, testable without sockets.

use super::commands::Local;
use super::session::Session;
use crate::config::Limits;
use crate::net::wire::secret_matches;
use crate::resp::reply;

/// What a local command may read beyond its session.
pub(super) struct Context<'a> {
    pub requirepass: Option<&'a str>,
    pub limits: &'a Limits,
    /// Keys in the cache (DBSIZE).
    pub keys: usize,
    /// INFO's text, if the command is INFO.
    pub info: Option<String>,
}

/// Writes the reply to `l` into `out`; whether the connection closes after it.
pub(super) fn answer(l: Local, s: &mut Session, ctx: &Context, out: &mut Vec<u8>) -> bool {
    match l {
        Local::Ping(None) => reply::simple(out, "PONG"),
        Local::Ping(Some(m)) | Local::Echo(m) => reply::bulk(out, &m),
        Local::Info(_) => reply::bulk(out, ctx.info.clone().unwrap_or_default().as_bytes()),
        Local::Auth(pass) => match ctx.requirepass {
            None => reply::error(
                out,
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ),
            Some(p) if secret_matches(Some(p), std::str::from_utf8(&pass).ok()) => {
                s.authed = true;
                reply::ok(out);
            }
            Some(_) => reply::error(out, "WRONGPASS invalid username-password pair or user is disabled."),
        },
        Local::Select | Local::Ok => reply::ok(out),
        Local::Quit => {
            reply::ok(out);
            return true;
        }
        Local::Hello => {
            let fields: [(&str, Vec<u8>); 7] = [
                ("server", b"redis".to_vec()),
                ("version", b"7.0.0".to_vec()),
                ("proto", b"2".to_vec()),
                ("id", s.id.to_string().into_bytes()),
                ("mode", b"standalone".to_vec()),
                ("role", b"master".to_vec()),
                ("modules", Vec::new()),
            ];
            reply::array(out, fields.len() * 2);
            for (k, v) in fields {
                reply::bulk(out, k.as_bytes());
                match k {
                    "proto" | "id" => reply::int(out, String::from_utf8_lossy(&v).parse().unwrap_or(0)),
                    "modules" => reply::array(out, 0),
                    _ => reply::bulk(out, &v),
                }
            }
        }
        Local::ClientSetName(n) => {
            s.name = Some(n);
            reply::ok(out);
        }
        Local::ClientGetName => reply::bulk_or_nil(out, s.name.as_deref()),
        Local::ClientId => reply::int(out, s.id as i64),
        Local::CommandList => reply::array(out, 0),
        Local::CommandCount => reply::int(out, 22),
        Local::ConfigGet(param) => {
            let limits = ctx.limits;
            let known: [(&str, String); 6] = [
                ("maxclients", limits.maxclients.to_string()),
                ("proto-max-bulk-len", limits.max_bulk.to_string()),
                ("timeout", limits.idle_timeout.to_string()),
                ("save", String::new()),
                ("appendonly", "no".into()),
                ("databases", "1".into()),
            ];
            let hits: Vec<&(&str, String)> = known.iter().filter(|(k, _)| glob(&param, k.as_bytes())).collect();
            reply::array(out, hits.len() * 2);
            for (k, v) in hits {
                reply::bulk(out, k.as_bytes());
                reply::bulk(out, v.as_bytes());
            }
        }
        Local::DbSize => reply::int(out, ctx.keys as i64),
    }
    false
}

/// Redis-style glob match of CONFIG GET patterns (`*` and `?` only).
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], s) || (!s.is_empty() && glob(pattern, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{decode_reply, Reply};
    use failgroup_model::ClientId;

    fn session() -> Session {
        Session { client: ClientId(1), seq: 0, authed: false, name: None, id: 7, inflight: None, starved: false }
    }

    fn run(l: Local, s: &mut Session, requirepass: Option<&str>) -> (Reply, bool) {
        let limits = Limits::default();
        let ctx = Context { requirepass, limits: &limits, keys: 3, info: Some("# Server\r\n".into()) };
        let mut out = Vec::new();
        let close = answer(l, s, &ctx, &mut out);
        let (reply, used) = decode_reply(&out).expect("a reply").expect("a whole reply");
        assert_eq!(used, out.len(), "one reply");
        (reply, close)
    }

    #[test]
    fn config_get_globs() {
        assert!(glob(b"*", b"save"));
        assert!(glob(b"max*", b"maxclients"));
        assert!(!glob(b"max?", b"maxclients"));
    }

    #[test]
    fn auth_ping_dbsize_quit_without_sockets() {
        let mut s = session();
        let (r, _) = run(Local::Auth(b"nope".to_vec()), &mut s, Some("pw"));
        assert_eq!(r, Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into()));
        assert!(!s.authed);
        assert_eq!(run(Local::Auth(b"pw".to_vec()), &mut s, Some("pw")).0, Reply::Simple("OK".into()));
        assert!(s.authed);
        assert!(
            matches!(run(Local::Auth(b"pw".to_vec()), &mut s, None).0, Reply::Error(e) if e.starts_with("ERR AUTH"))
        );
        assert_eq!(run(Local::Ping(None), &mut s, None).0, Reply::Simple("PONG".into()));
        assert_eq!(run(Local::DbSize, &mut s, None).0, Reply::Int(3));
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
        assert_eq!(pairs[0], Reply::Bulk(Some(b"maxclients".to_vec())));
        assert_eq!(pairs.len(), 2);
    }
}
