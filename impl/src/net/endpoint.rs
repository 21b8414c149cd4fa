//! What both event loops (a server's and the master's) keep of the
//! network: the poll, the listener, the connections by token. It accepts,
//! opens, waits and drops connections; what a connection is for stays the
//! loop's business.

use super::connection::{Connection, Proto};
use super::socket::{listen, resolve, ListenError};
use super::tls::{Acceptor, NodeTls, TlsSession};
use super::wire::Peer;
use foldhash::{HashMap, HashMapExt};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::time::Duration;

pub struct Endpoint {
    pub poll: Poll,
    listener: TcpListener,
    /// RESP over TLS, where the config asks for it.
    tls: Option<(TcpListener, Acceptor)>,
    /// Node links over TLS (`tls.nodes`).
    node_tls: Option<NodeTls>,
    pub conns: HashMap<Token, Connection>,
    next_token: usize,
}

impl Endpoint {
    /// The listener's token.
    pub const LISTENER: Token = Token(0);
    /// The TLS listener's.
    pub const TLS_LISTENER: Token = Token(usize::MAX - 1);

    /// Listens on `addr`; connections get tokens from `first_token` on
    /// (those below are the loop's own, e.g. a waker).
    pub fn bind(addr: &str, first_token: usize) -> Result<Endpoint, ListenError> {
        let (poll, listener) = listen(addr, Endpoint::LISTENER)?;
        Ok(Endpoint {
            poll,
            listener,
            tls: None,
            node_tls: None,
            conns: HashMap::new(),
            next_token: first_token.max(1),
        })
    }

    /// Node links over TLS: dialled with it, and taken with it on the
    /// listener when a connection starts with a TLS handshake.
    pub fn set_node_tls(&mut self, t: NodeTls) {
        self.node_tls = Some(t);
    }

    /// A readiness event of `tok`: reads what came, then writes what waits.
    /// An accepted connection that has not said what it speaks and begins
    /// with a TLS handshake (a record of type 22) goes over TLS first, where
    /// node links do: the handshake's answer leaves now, and what it carried
    /// is read as usual. The connection, if it is still there.
    pub fn ready(&mut self, tok: Token) -> Option<&mut Connection> {
        let c = self.conns.get_mut(&tok)?;
        c.read_all();
        if let Some(t) = &self.node_tls {
            if c.proto == Proto::Unknown && !c.is_tls() && c.rbuf.first() == Some(&0x16) {
                c.start_tls(t.acceptor());
                c.read_all();
            }
        }
        c.flush();
        Some(c)
    }

    /// Listens on `addr` too, for connections that speak TLS.
    pub fn listen_tls(&mut self, addr: &str, acceptor: Acceptor) -> Result<(), ListenError> {
        let fail = |error| ListenError { addr: addr.to_string(), error };
        let mut listener = TcpListener::bind(resolve(addr).map_err(fail)?).map_err(fail)?;
        self.poll.registry().register(&mut listener, Endpoint::TLS_LISTENER, Interest::READABLE).map_err(fail)?;
        self.tls = Some((listener, acceptor));
        Ok(())
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
        self.accept_on(false)
    }

    /// Accepts every pending connection on the TLS address; their tokens.
    pub fn accept_tls(&mut self) -> Vec<Token> {
        self.accept_on(true)
    }

    fn accept_on(&mut self, tls: bool) -> Vec<Token> {
        let mut new = Vec::new();
        loop {
            let accepted = match (&self.tls, tls) {
                (Some((l, _)), true) => l.accept(),
                (None, true) => return new,
                (_, false) => self.listener.accept(),
            };
            match accepted {
                Ok((sock, addr)) => {
                    let _ = sock.set_nodelay(true);
                    let mut conn = Connection::new(sock, addr, Proto::Unknown);
                    if let Some((_, acceptor)) = self.tls.as_ref().filter(|_| tls) {
                        match TlsSession::accept(acceptor) {
                            Ok(s) => conn = conn.with_tls(s),
                            Err(e) => {
                                tracing::warn!(error = %e, "TLS session not made");
                                continue;
                            }
                        }
                    }
                    if let Some(tok) = self.add(conn) {
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
        self.add(Connection::connect(addr, from, secret, self.node_tls.as_ref()).ok()?)
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
