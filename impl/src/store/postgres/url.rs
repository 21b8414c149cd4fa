//! PostgreSQL URLs as users write them, and their refusals.

use std::fmt;
use std::time::Duration;

/// Where and how to connect, from `postgres://user:password@host:port/db`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgUrl {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub dbname: String,
    /// Connect timeout and socket read/write timeout (`?timeout_ms=`).
    pub timeout: Duration,
}

/// A PostgreSQL URL this client cannot use: why, and the URL without its
/// password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadUrl {
    pub why: String,
    pub url: String,
}

impl fmt::Display for BadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {:?} (expected postgres://user[:password]@host[:port]/dbname)", self.why, self.url)
    }
}

impl std::error::Error for BadUrl {}

impl PgUrl {
    pub fn parse(url: &str) -> Result<PgUrl, BadUrl> {
        let bad = |why: &str| BadUrl { why: why.to_string(), url: redact(url) };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("no postgres:// scheme"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, rest) = rest.rsplit_once('@').ok_or_else(|| bad("no user@"))?;
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => {
                (decode(u).ok_or_else(|| bad("bad %-escape"))?, Some(decode(p).ok_or_else(|| bad("bad %-escape"))?))
            }
            None => (decode(auth).ok_or_else(|| bad("bad %-escape"))?, None),
        };
        let (hostport, dbname) = rest.split_once('/').ok_or_else(|| bad("no /dbname"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
            None => (hostport, 5432),
        };
        if user.is_empty() || host.is_empty() || dbname.is_empty() {
            return Err(bad("empty user, host or dbname"));
        }
        let mut timeout = Duration::from_secs(5);
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("timeout_ms", v)) => {
                    let ms: u64 = v
                        .parse()
                        .ok()
                        .filter(|ms| *ms > 0)
                        .ok_or_else(|| bad("timeout_ms must be a positive integer"))?;
                    timeout = Duration::from_millis(ms);
                }
                _ => return Err(bad(&format!("unknown option {kv:?} (known: timeout_ms)"))),
            }
        }
        Ok(PgUrl {
            user,
            password,
            host: host.trim_matches(['[', ']']).to_string(),
            port,
            dbname: dbname.to_string(),
            timeout,
        })
    }
}

/// The URL again (with the password: for configs, not for logs).
impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| s.replace('%', "%25").replace('@', "%40").replace(':', "%3A").replace('/', "%2F");
        write!(f, "postgres://{}", enc(&self.user))?;
        if let Some(p) = &self.password {
            write!(f, ":{}", enc(p))?;
        }
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "@{host}:{}/{}?timeout_ms={}", self.port, self.dbname, self.timeout.as_millis())
    }
}

/// The URL with its password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_name_the_problem() {
        let u = PgUrl::parse("postgres://fg:p%40ss@db.example:6432/cache?timeout_ms=1500").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_deref(), u.host.as_str()), ("fg", Some("p@ss"), "db.example"));
        assert_eq!((u.port, u.dbname.as_str(), u.timeout), (6432, "cache", Duration::from_millis(1500)));
        assert_eq!(PgUrl::parse(&u.to_string()).unwrap(), u, "{u}");
        let d = PgUrl::parse("postgresql://postgres@127.0.0.1/postgres").unwrap();
        assert_eq!((d.port, d.password, d.timeout), (5432, None, Duration::from_secs(5)));
        for (bad, why) in [
            ("mysql://a@b/c", "scheme"),
            ("postgres://host/db", "user@"),
            ("postgres://u@h", "/dbname"),
            ("postgres://u@h:x/d", "port"),
            ("postgres://u:s3cret@h/d?sslmode=require", "unknown option"),
            ("postgres://u@h/d?timeout_ms=0", "timeout_ms"),
        ] {
            let e = PgUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "the password leaked: {e}");
        }
    }
}
