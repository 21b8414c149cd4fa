//! PostgreSQL URLs as users write them, and their refusals.

use std::fmt;
use std::time::Duration;

/// Where and how to connect, from `postgres://user:password@host:port/db`
/// (several `host:port` separated by commas are tried in turn, as libpq
/// does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgUrl {
    pub user: String,
    pub password: Option<String>,
    /// The first host; `hosts` has it and the others.
    pub host: String,
    pub port: u16,
    /// Every `host:port` of the URL, in order.
    pub hosts: Vec<(String, u16)>,
    pub dbname: String,
    /// Connect timeout and socket read/write timeout (`?timeout_ms=`).
    pub timeout: Duration,
    /// `?sslmode=` (libpq's, `prefer` by default).
    pub sslmode: SslMode,
    /// `?sslrootcert=`: the CAs `verify-ca` and `verify-full` trust.
    pub sslrootcert: Option<String>,
    /// `?target_session_attrs=read-write`: skip hosts whose sessions are
    /// read-only (a standby), so a PostgreSQL failover is followed.
    pub read_write: bool,
}

/// libpq's `sslmode`: whether the connection is encrypted, and what of the
/// server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text.
    Disable,
    /// TLS where the server offers it (not checked), else plain text.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, with a certificate chained to `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
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
        let (hostports, dbname) = rest.split_once('/').ok_or_else(|| bad("no /dbname"))?;
        let mut hosts = Vec::new();
        for hostport in hostports.split(',') {
            // `[::1]:5432`, `host:5432` or `host`.
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !p.ends_with(']') => (h, p.parse().map_err(|_| bad("bad port"))?),
                _ => (hostport, 5432),
            };
            let host = host.trim_matches(['[', ']']);
            if host.is_empty() {
                return Err(bad("empty host"));
            }
            hosts.push((host.to_string(), port));
        }
        if user.is_empty() || dbname.is_empty() {
            return Err(bad("empty user or dbname"));
        }
        let mut timeout = Duration::from_secs(5);
        let (mut sslmode, mut sslrootcert, mut read_write) = (SslMode::Prefer, None, false);
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
                Some(("sslmode", v)) => {
                    sslmode = SslMode::parse(v).ok_or_else(|| {
                        bad(&format!("sslmode {v:?} (known: disable, prefer, require, verify-ca, verify-full)"))
                    })?;
                }
                Some(("sslrootcert", v)) => {
                    sslrootcert = Some(decode(v).filter(|p| !p.is_empty()).ok_or_else(|| bad("bad sslrootcert"))?)
                }
                Some(("target_session_attrs", v)) => {
                    read_write = match v {
                        "any" => false,
                        "read-write" => true,
                        _ => return Err(bad(&format!("target_session_attrs {v:?} (known: any, read-write)"))),
                    }
                }
                _ => {
                    let known = "timeout_ms, sslmode, sslrootcert, target_session_attrs";
                    return Err(bad(&format!("unknown option {kv:?} (known: {known})")));
                }
            }
        }
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && sslrootcert.is_none() {
            return Err(bad(&format!("sslmode={} needs sslrootcert=PATH (the CAs to trust)", sslmode.name())));
        }
        let (host, port) = hosts[0].clone();
        Ok(PgUrl {
            user,
            password,
            host,
            port,
            hosts,
            dbname: dbname.to_string(),
            timeout,
            sslmode,
            sslrootcert,
            read_write,
        })
    }
}

/// The URL again (with the password: for configs, not for logs).
impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| {
            s.replace('%', "%25").replace('@', "%40").replace(':', "%3A").replace('/', "%2F").replace('&', "%26")
        };
        write!(f, "postgres://{}", enc(&self.user))?;
        if let Some(p) = &self.password {
            write!(f, ":{}", enc(p))?;
        }
        f.write_str("@")?;
        for (i, (host, port)) in self.hosts.iter().enumerate() {
            let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
            write!(f, "{}{host}:{port}", if i > 0 { "," } else { "" })?;
        }
        write!(f, "/{}?timeout_ms={}&sslmode={}", self.dbname, self.timeout.as_millis(), self.sslmode.name())?;
        if let Some(p) = &self.sslrootcert {
            write!(f, "&sslrootcert={}", enc(p))?;
        }
        if self.read_write {
            f.write_str("&target_session_attrs=read-write")?;
        }
        Ok(())
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
        assert_eq!((d.sslmode, d.read_write), (SslMode::Prefer, false), "libpq's defaults");
        // Several hosts, TLS checked against a CA, a read-write session.
        let m = PgUrl::parse(
            "postgres://fg@db1:5433,[::1],db3/cache?sslmode=verify-full&sslrootcert=/etc/ca%26.pem&target_session_attrs=read-write",
        )
        .unwrap();
        let hosts = [("db1".to_string(), 5433), ("::1".to_string(), 5432), ("db3".to_string(), 5432)];
        assert_eq!(m.hosts, hosts);
        assert_eq!(
            (m.sslmode, m.sslrootcert.as_deref(), m.read_write),
            (SslMode::VerifyFull, Some("/etc/ca&.pem"), true)
        );
        assert_eq!(PgUrl::parse(&m.to_string()).unwrap(), m, "{m}");
        for (bad, why) in [
            ("mysql://a@b/c", "scheme"),
            ("postgres://host/db", "user@"),
            ("postgres://u@h", "/dbname"),
            ("postgres://u@h:x/d", "port"),
            ("postgres://u:s3cret@h/d?sslmode=maybe", "sslmode \"maybe\""),
            ("postgres://u:s3cret@h/d?sslmode=verify-full", "needs sslrootcert"),
            ("postgres://u:s3cret@h/d?target_session_attrs=primary", "target_session_attrs"),
            ("postgres://u:s3cret@h/d?ssl=1", "unknown option"),
            ("postgres://u@h1,/d", "empty host"),
            ("postgres://u@h/d?timeout_ms=0", "timeout_ms"),
        ] {
            let e = PgUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "the password leaked: {e}");
        }
    }
}
