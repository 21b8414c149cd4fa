//! What both event loops (a server's and the master's) keep of the
//! network: the poll, the listener, the connections by token. It accepts,
//! opens, waits and drops connections; what a connection is for stays the
//! loop's business.

use super::connection::{Connection, Proto};
use super::socket::{listen, ListenError};
use super::wire::Peer;
use foldhash::{HashMap, HashMapExt};
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use std::io;
use std::time::Duration;

pub struct Endpoint {
    pub poll: Poll,
    listener: TcpListener,
    pub conns: HashMap<Token, Connection>,
    next_token: usize,
}

impl Endpoint {
    /// The listener's token.
    pub const LISTENER: Token = Token(0);

    /// Listens on `addr`; connections get tokens from `first_token` on
    /// (those below are the loop's own, e.g. a waker).
    pub fn bind(addr: &str, first_token: usize) -> Result<Endpoint, ListenError> {
        let (poll, listener) = listen(addr, Endpoint::LISTENER)?;
        Ok(Endpoint { poll, listener, conns: HashMap::new(), next_token: first_token.max(1) })
    }

    /// Waits for readiness at most `timeout` (a signal's interruption is
    /// not an error).
    pub fn wait(&mut self, events: &mut Events, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(events, Some(timeout)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    /// Accepts every pending connection; their tokens.
    pub fn accept(&mut self) -> Vec<Token> {
        let mut new = Vec::new();
        loop {
            match self.listener.accept() {
                Ok((sock, addr)) => {
                    let _ = sock.set_nodelay(true);
                    if let Some(tok) = self.add(Connection::new(sock, addr, Proto::Unknown)) {
                        new.push(tok);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return new,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return new;
                }
            }
        }
    }

    /// Opens a node connection to `addr` as `from` (the hello is queued).
    pub fn open(&mut self, addr: &str, from: Peer, secret: Option<&str>) -> Option<Token> {
        self.add(Connection::connect(addr, from, secret).ok()?)
    }

    fn add(&mut self, mut conn: Connection) -> Option<Token> {
        let tok = Token(self.next_token);
        self.next_token += 1;
        conn.register(self.poll.registry(), tok).ok()?;
        self.conns.insert(tok, conn);
        Some(tok)
    }

    /// Drops a connection.
    pub fn remove(&mut self, tok: Token) -> Option<Connection> {
        let mut c = self.conns.remove(&tok)?;
        let _ = self.poll.registry().deregister(&mut c.sock);
        Some(c)
    }
}
