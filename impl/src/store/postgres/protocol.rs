//! A small blocking PostgreSQL client: `postgres-protocol` encodes and
//! decodes the messages, a `std::net::TcpStream` with timeouts carries them.
//! No async runtime (the `postgres` crate runs tokio underneath) and no C
//! library (libpq): a store thread blocks on its one connection anyway, and
//! a socket timeout is all a cut link needs to surface as an error.
//!
//! Statements go through the extended protocol, prepared once per
//! connection and cached by their text; parameters and results are binary.
//! Authentication: trust, cleartext, MD5 and SCRAM-SHA-256, over TLS as
//! the URL's `sslmode` asks (rustls, `crate::net::tls`); several hosts are
//! tried in turn, a read-only one skipped with
//! `target_session_attrs=read-write`.

pub use super::error::PgError;
pub use super::url::{redact, BadUrl, PgUrl, SslMode};
use crate::net::tls::{ServerCheck, TlsStream};
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend::Message, frontend};
use postgres_protocol::IsNull;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A parameter: `int8`, `bytea`, a null `int8`, or an `int8[]`.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    NullInt,
    IntArray(&'a [i64]),
}

const INT8: u32 = 20;
const BYTEA: u32 = 17;
const INT8_ARRAY: u32 = 1016;

/// The binary form of a one-dimensional `int8[]` without NULLs.
fn int_array(v: &[i64], buf: &mut BytesMut) {
    let dims: i32 = if v.is_empty() { 0 } else { 1 };
    buf.extend_from_slice(&dims.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes()); // no NULLs
    buf.extend_from_slice(&INT8.to_be_bytes());
    if !v.is_empty() {
        buf.extend_from_slice(&(v.len() as i32).to_be_bytes());
        buf.extend_from_slice(&1i32.to_be_bytes()); // lower bound
        for x in v {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&x.to_be_bytes());
        }
    }
}

/// A result row, binary columns (`None`: NULL).
#[derive(Debug, Default)]
pub struct PgRow(Vec<Option<Vec<u8>>>);

impl PgRow {
    fn col(&self, i: usize) -> Result<Option<&[u8]>, PgError> {
        self.0.get(i).map(|c| c.as_deref()).ok_or_else(|| PgError::protocol(format!("no column {i}")))
    }
    pub fn bytes(&self, i: usize) -> Result<Option<Vec<u8>>, PgError> {
        Ok(self.col(i)?.map(<[u8]>::to_vec))
    }
    /// An `int8` column (cast in the query where needed).
    pub fn int(&self, i: usize) -> Result<Option<i64>, PgError> {
        match self.col(i)? {
            None => Ok(None),
            Some(b) => Ok(Some(i64::from_be_bytes(
                b.try_into().map_err(|_| PgError::protocol("int8 column of another size"))?,
            ))),
        }
    }
    pub fn int_req(&self, i: usize) -> Result<i64, PgError> {
        self.int(i)?.ok_or_else(|| PgError::protocol(format!("column {i} is NULL")))
    }
}

/// The connection's bytes: plain, or through TLS.
enum Stream {
    Plain(TcpStream),
    Tls(TlsStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct PgConn {
    sock: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    statements: HashMap<String, String>,
    /// Statement names are never reused: one parsed in a pipeline that then
    /// failed may exist on the server even though it is not in `statements`.
    next_statement: u64,
    /// A connection error left it in an unknown state: open a new one.
    pub broken: bool,
}

impl PgConn {
    /// Connects to the URL's first host that takes the connection (and,
    /// with `target_session_attrs=read-write`, gives a read-write session).
    /// With one host its error; with several, none taking it is a lost
    /// connection (tried again later: a standby being promoted) naming
    /// each host's error.
    pub fn connect(url: &PgUrl) -> Result<PgConn, PgError> {
        let mut errors = Vec::new();
        for (host, port) in &url.hosts {
            match PgConn::connect_to(url, host, *port) {
                Ok(c) => return Ok(c),
                Err(e) if url.hosts.len() == 1 => return Err(e),
                Err(e) => errors.push(format!("{host}:{port}: {e}")),
            }
        }
        Err(PgError::io(format!("no host took the connection ({})", errors.join("; "))))
    }

    fn connect_to(url: &PgUrl, host: &str, port: u16) -> Result<PgConn, PgError> {
        let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(PgError::io)?.collect();
        let mut last = PgError::io(format!("{host}: no address"));
        let sock = addrs.iter().find_map(|a| match TcpStream::connect_timeout(a, url.timeout) {
            Ok(s) => Some(s),
            Err(e) => {
                last = PgError::io(format!("{a}: {e}"));
                None
            }
        });
        let mut sock = sock.ok_or(last)?;
        sock.set_nodelay(true).map_err(PgError::io)?;
        sock.set_read_timeout(Some(url.timeout)).map_err(PgError::io)?;
        sock.set_write_timeout(Some(url.timeout)).map_err(PgError::io)?;
        let sock = match url.sslmode {
            SslMode::Disable => Stream::Plain(sock),
            mode => {
                // SSLRequest; the server answers one byte: S (TLS) or N.
                let mut req = BytesMut::new();
                frontend::ssl_request(&mut req);
                sock.write_all(&req).map_err(PgError::io)?;
                let mut answer = [0u8; 1];
                sock.read_exact(&mut answer).map_err(PgError::io)?;
                let check = match (mode, &url.sslrootcert) {
                    (SslMode::VerifyFull, Some(ca)) => ServerCheck::ChainAndName(ca.into()),
                    (SslMode::VerifyCa, Some(ca)) => ServerCheck::Chain(ca.into()),
                    _ => ServerCheck::Nothing,
                };
                match answer[0] {
                    b'S' => {
                        Stream::Tls(crate::net::tls::connect(sock, host, &check).map_err(|e| PgError::Unusable(e.0))?)
                    }
                    b'N' if mode == SslMode::Prefer => Stream::Plain(sock),
                    b'N' => {
                        let why = format!("{host}:{port} does not take TLS (sslmode={})", mode.name());
                        return Err(PgError::Unusable(why));
                    }
                    _ => return Err(PgError::protocol("an unknown answer to SSLRequest")),
                }
            }
        };
        let mut c = PgConn {
            sock,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            statements: HashMap::new(),
            next_statement: 0,
            broken: false,
        };
        c.startup(url).and_then(|()| c.limit_session(url.timeout)).inspect_err(|_| c.broken = true)?;
        if url.read_write && c.read_only()? {
            return Err(PgError::Unusable(format!(
                "{host}:{port} gives read-only sessions (target_session_attrs=read-write)"
            )));
        }
        Ok(c)
    }

    /// Whether this session is read-only (a standby's, or the database's
    /// `default_transaction_read_only`).
    fn read_only(&mut self) -> Result<bool, PgError> {
        let sql = "SELECT (current_setting('transaction_read_only') = 'on')::int::int8";
        Ok(self.query(sql, &[])?.first().map(|r| r.int(0)).transpose()?.flatten() == Some(1))
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.sock, Stream::Tls(_))
    }

    /// The session's server-side limits follow the URL's timeout, so that a
    /// client that vanished (a cut link) cannot hold locks longer than a
    /// live one would wait: its transaction, left open between statements,
    /// ends after the timeout (`idle_in_transaction_session_timeout`); a
    /// statement waits for a lock half of it (`lock_timeout`, a retryable
    /// error) and runs at most all of it (`statement_timeout`), so a backend
    /// whose client gave up does not linger. Set with `SET` rather than as
    /// start-up parameters, which connection poolers refuse.
    fn limit_session(&mut self, timeout: Duration) -> Result<(), PgError> {
        let ms = timeout.as_millis().max(2);
        self.batch(&format!(
            "SET idle_in_transaction_session_timeout = {ms}; SET statement_timeout = {ms}; SET lock_timeout = {}",
            ms / 2
        ))
    }

    fn startup(&mut self, url: &PgUrl) -> Result<(), PgError> {
        let params =
            [("user", url.user.as_str()), ("database", url.dbname.as_str()), ("application_name", "failgroup")];
        frontend::startup_message(params.iter().copied(), &mut self.wbuf).map_err(PgError::protocol)?;
        self.flush()?;
        let password = || {
            url.password
                .as_deref()
                .ok_or_else(|| PgError::Unusable("the server asks for a password; put one in the store URL".into()))
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            match self.recv()? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut self.wbuf).map_err(PgError::protocol)?;
                    self.flush()?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(url.user.as_bytes(), password()?.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.wbuf).map_err(PgError::protocol)?;
                    self.flush()?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechs = body.mechanisms();
                    let mut ok = false;
                    while let Some(m) = mechs.next().map_err(PgError::protocol)? {
                        ok |= m == sasl::SCRAM_SHA_256;
                    }
                    if !ok {
                        return Err(PgError::Unusable("the server offers no SCRAM-SHA-256".into()));
                    }
                    let s = sasl::ScramSha256::new(password()?.as_bytes(), sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut self.wbuf)
                        .map_err(PgError::io)?;
                    self.flush()?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| PgError::protocol("SASL continue without a start"))?;
                    s.update(body.data()).map_err(PgError::protocol)?;
                    frontend::sasl_response(s.message(), &mut self.wbuf).map_err(PgError::protocol)?;
                    self.flush()?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| PgError::protocol("SASL final without a start"))?;
                    s.finish(body.data()).map_err(PgError::protocol)?;
                }
                Message::ErrorResponse(body) => return Err(server_error(body)),
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ParameterStatus(_) | Message::BackendKeyData(_) | Message::NoticeResponse(_) => {}
                _ => {
                    return Err(PgError::Unusable(
                        "unexpected message during start-up (Kerberos/GSS are not supported)".into(),
                    ))
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), PgError> {
        let r = self.sock.write_all(&self.wbuf);
        self.wbuf.clear();
        r.map_err(|e| {
            self.broken = true;
            PgError::io(e)
        })
    }

    fn recv(&mut self) -> Result<Message, PgError> {
        loop {
            match Message::parse(&mut self.rbuf) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(PgError::protocol(e));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.sock.read(&mut chunk) {
                Ok(0) => {
                    self.broken = true;
                    return Err(PgError::io("the server closed the connection"));
                }
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    self.broken = true;
                    return Err(PgError::io(e));
                }
            }
        }
    }

    /// Runs `sql` (one or more statements, no parameters) with the simple protocol.
    pub fn batch(&mut self, sql: &str) -> Result<(), PgError> {
        frontend::query(sql, &mut self.wbuf).map_err(PgError::protocol)?;
        self.flush()?;
        let mut err = None;
        loop {
            match self.recv()? {
                Message::ReadyForQuery(_) => return err.map_or(Ok(()), Err),
                Message::ErrorResponse(body) => err = Some(server_error(body)),
                _ => {}
            }
        }
    }

    /// Runs one statement with parameters; returns its rows.
    pub fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<PgRow>, PgError> {
        let mut r = self.pipeline(&[(sql, params)])?;
        Ok(r.pop().unwrap_or_default())
    }

    /// Runs statements in one round trip (sent together, one Sync); returns
    /// each one's rows. The first error stops the rest and is returned (in
    /// a transaction block, the transaction is then aborted).
    pub fn pipeline(&mut self, stmts: &[(&str, &[Param])]) -> Result<Vec<Vec<PgRow>>, PgError> {
        let mut parsing: HashMap<&str, String> = HashMap::new();
        for (sql, params) in stmts {
            let name = match self.statements.get(*sql).or_else(|| parsing.get(sql)) {
                Some(n) => n.clone(),
                None => {
                    let n = format!("s{}", self.next_statement);
                    self.next_statement += 1;
                    let types = params.iter().map(|p| match p {
                        Param::Int(_) | Param::NullInt => INT8,
                        Param::Bytes(_) => BYTEA,
                        Param::IntArray(_) => INT8_ARRAY,
                    });
                    frontend::parse(&n, sql, types, &mut self.wbuf).map_err(PgError::protocol)?;
                    parsing.insert(sql, n.clone());
                    n
                }
            };
            let bound = frontend::bind(
                "",
                &name,
                [1i16],
                params.iter(),
                |p, buf| {
                    match p {
                        Param::Int(v) => buf.extend_from_slice(&v.to_be_bytes()),
                        Param::Bytes(b) => buf.extend_from_slice(b),
                        Param::NullInt => return Ok(IsNull::Yes),
                        Param::IntArray(v) => int_array(v, buf),
                    }
                    Ok(IsNull::No)
                },
                [1i16],
                &mut self.wbuf,
            );
            if bound.is_err() {
                self.wbuf.clear();
                return Err(PgError::protocol("too many parameters"));
            }
            frontend::execute("", 0, &mut self.wbuf).map_err(PgError::protocol)?;
        }
        frontend::sync(&mut self.wbuf);
        self.flush()?;
        let mut results = Vec::with_capacity(stmts.len());
        let mut rows = Vec::new();
        let mut err = None;
        loop {
            match self.recv()? {
                Message::CommandComplete(_) | Message::EmptyQueryResponse => results.push(std::mem::take(&mut rows)),
                Message::DataRow(body) => {
                    let buf = body.buffer();
                    let cols: Vec<Option<Vec<u8>>> =
                        body.ranges().map(|r| Ok(r.map(|r| buf[r].to_vec()))).collect().map_err(
                            |e: std::io::Error| {
                                self.broken = true;
                                PgError::protocol(e)
                            },
                        )?;
                    rows.push(PgRow(cols));
                }
                Message::ErrorResponse(body) => err = Some(server_error(body)),
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        // Statements parsed before an error stay prepared; after one, the
        // server skipped the rest, parses included: forget those.
        let done = results.len();
        for (i, (sql, _)) in stmts.iter().enumerate() {
            if let Some(n) = parsing.remove(sql) {
                if i < done || err.is_none() {
                    self.statements.insert(sql.to_string(), n);
                }
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }
}

fn server_error(body: postgres_protocol::message::backend::ErrorResponseBody) -> PgError {
    let (mut code, mut msg) = (String::from("XX000"), String::from("error"));
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'M' => msg = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    PgError::Server { code, msg }
}

/// For tests: a fresh database `name` on the server of `FAILGROUP_TEST_PG`
/// (an admin URL), or None with a note when that is not set. With
/// `FAILGROUP_REQUIRE_PG=1` (CI) a missing server fails instead.
pub fn test_database(name: &str) -> Option<PgUrl> {
    let Ok(admin) = std::env::var("FAILGROUP_TEST_PG") else {
        assert!(
            std::env::var_os("FAILGROUP_REQUIRE_PG").is_none(),
            "FAILGROUP_REQUIRE_PG is set but FAILGROUP_TEST_PG is not"
        );
        eprintln!("note: FAILGROUP_TEST_PG is not set; skipping the PostgreSQL part (see tests/scripts/postgres.sh)");
        return None;
    };
    let admin = PgUrl::parse(&admin).unwrap_or_else(|e| panic!("FAILGROUP_TEST_PG: {e}"));
    let mut c = PgConn::connect(&admin).unwrap_or_else(|e| panic!("FAILGROUP_TEST_PG: {e}"));
    c.batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap_or_else(|e| panic!("{e}"));
    c.batch(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("{e}"));
    Some(PgUrl { dbname: name.to_string(), ..admin })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoding error is not a lost connection: it is not retried with a
    /// new connection, and only the server's own conflict codes are retried
    /// as transactions.
    #[test]
    fn errors_say_what_to_retry() {
        let conflict = PgError::Server { code: "40001".into(), msg: "could not serialize".into() };
        assert!(conflict.retryable() && !conflict.connection_lost());
        let constraint = PgError::Server { code: "23505".into(), msg: "duplicate key".into() };
        assert!(!constraint.retryable() && !constraint.connection_lost());
        assert!(PgError::io("reset by peer").connection_lost());
        let decoding = PgError::protocol("int8 column of another size");
        assert!(!decoding.retryable() && !decoding.connection_lost());
        assert!(!PgError::Unusable("no SCRAM".into()).connection_lost());
    }

    /// A client that vanishes inside a transaction (a cut link: it neither
    /// sends nor closes) holds its row locks for the timeout only: another
    /// session's write to the same row first fails retryably (a lock not
    /// granted in half the timeout), then goes through once the vanished
    /// session's transaction has been ended. Needs `FAILGROUP_TEST_PG`.
    #[test]
    fn a_vanished_client_holds_its_locks_for_the_timeout_only() {
        let Some(url) = test_database("fg_unit_vanished") else { return };
        let url = PgUrl { timeout: Duration::from_millis(1000), ..url };
        let mut gone = PgConn::connect(&url).unwrap();
        gone.batch("CREATE TABLE t (k bigint PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 0)").unwrap();
        gone.batch("BEGIN; UPDATE t SET v = 1 WHERE k = 1").unwrap();
        let mut other = PgConn::connect(&url).unwrap();
        let start = std::time::Instant::now();
        let first = other.batch("UPDATE t SET v = 2 WHERE k = 1").unwrap_err();
        assert!(first.retryable(), "{first}");
        let mut tries = 1;
        while let Err(e) = other.batch("UPDATE t SET v = 2 WHERE k = 1") {
            assert!(e.retryable() && tries < 20, "{e} after {tries} tries");
            tries += 1;
        }
        let waited = start.elapsed();
        assert!(waited < Duration::from_millis(2500), "the write waited {waited:?}");
        let v = other.query("SELECT v FROM t WHERE k = 1", &[]).unwrap();
        assert_eq!(v[0].int_req(0).unwrap(), 2);
        assert!(gone.batch("COMMIT").is_err(), "the vanished session's transaction was ended");
    }
}
