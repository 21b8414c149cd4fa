//! The server's links: connections it accepts (RESP clients, peers, the
//! master, library clients) and those it opens (to peers and the master),
//! the node protocol's hello, and node messages fed to the core.

use super::node::ServerNode;
use super::session::{Session, Waiter};
use crate::config::Refusal;
use crate::net::wire::{Msg, Peer};
use crate::net::{Connection, Proto};
use crate::resp::reply;
use failgroup_model::{ClientId, Origin, ServerId, ServerInput};
use mio::Token;

impl ServerNode {
    /// The outbound connection to a peer, opened if need be.
    pub(super) fn peer_conn(&mut self, to: ServerId) -> Option<&mut Connection> {
        if !self.peers_out.get(&to).is_some_and(|t| self.net.conns.contains_key(t)) {
            let addr = self.core.topo(&self.st).addr(to).to_string();
            let tok = self.open(&addr)?;
            self.peers_out.insert(to, tok);
        }
        self.net.conns.get_mut(&self.peers_out[&to])
    }

    /// The master's connection to us if there is one, else ours to it.
    pub(super) fn master_conn(&mut self) -> Option<&mut Connection> {
        if let Some(t) = self.master_in.filter(|t| self.net.conns.contains_key(t)) {
            return self.net.conns.get_mut(&t);
        }
        if !self.master_out.is_some_and(|t| self.net.conns.contains_key(&t)) {
            let addr = self.cfg.file.master.clone();
            self.master_out = self.open(&addr);
        }
        self.net.conns.get_mut(&self.master_out?)
    }

    pub(super) fn open(&mut self, addr: &str) -> Option<Token> {
        self.net.open(addr, Peer::Server(self.core.id), self.cfg.file.secret.as_deref())
    }

    pub(super) fn accept(&mut self) {
        self.stats.connections += self.net.accept().len() as u64;
    }

    pub(super) fn accept_tls(&mut self) {
        self.stats.connections += self.net.accept_tls().len() as u64;
    }

    pub(super) fn on_readiness(&mut self, tok: Token) {
        let Some(c) = self.net.ready(tok) else { return };
        if let Some(s) = self.sessions.get_mut(&tok) {
            s.starved = false;
        }
        if c.proto == Proto::Unknown && !c.rbuf.is_empty() {
            if c.rbuf[0] == 0 {
                if c.take_preamble() {
                    c.proto = Proto::Node { peer: None };
                }
            } else {
                let clients = self.sessions.len();
                c.proto = Proto::Resp;
                if clients >= self.cfg.file.limits.maxclients {
                    self.stats.rejected_connections += 1;
                    reply::error(&mut c.wbuf, "ERR max number of clients reached");
                    c.closing = true;
                    c.rbuf.clear();
                    return;
                }
                let id = self.next_client;
                self.next_client += 1;
                let client = ClientId(self.client_base.wrapping_add(id));
                let authed = self.cfg.file.requirepass.is_none();
                self.sessions.insert(tok, Session::new(client, id, authed));
            }
        }
        match self.net.conns[&tok].proto {
            Proto::Resp => self.drive(tok),
            Proto::Node { .. } => self.node_input(tok),
            Proto::Unknown => {}
        }
    }

    /// Processes a node connection's messages.
    pub(super) fn node_input(&mut self, tok: Token) {
        let max = self.cfg.file.limits.max_frame;
        let to_peer = self.peers_out.iter().find(|(_, t)| **t == tok).map(|(s, _)| *s);
        let outbound = to_peer.is_some() || self.master_out == Some(tok);
        loop {
            let Some(c) = self.net.conns.get_mut(&tok) else { return };
            let Proto::Node { peer } = c.proto else { return };
            // A draining server past its hand-back takes no new request.
            if matches!(peer, Some(Peer::Client(_))) && self.drain.is_some_and(|d| d.closing) {
                return;
            }
            let Some(msg) = c.next_msg(max) else { return };
            // Heard from: reachable again.
            match (to_peer, peer) {
                (Some(s), _) | (None, Some(Peer::Server(s))) => {
                    self.unreachable.remove(&s);
                }
                _ => {}
            }
            if outbound {
                match msg {
                    Msg::ForwardReply { op, incarnation, result } => {
                        let Some(from) = to_peer else { continue };
                        if let Some(sent) = self.forwards.remove(&op) {
                            self.forward_time.observe(sent.elapsed().as_secs_f64());
                        }
                        self.step(ServerInput::ForwardReply { from, incarnation, op, result });
                    }
                    Msg::Master(m) => self.step(ServerInput::Master(m)),
                    Msg::Refused(why) => {
                        tracing::error!(peer = %c.addr, %why, "refused by a node");
                        c.dead = true;
                    }
                    _ => {}
                }
                continue;
            }
            match (peer, msg) {
                (None, Msg::Hello { from, secret }) => {
                    if let Err(why) = self.welcome(tok, from, secret.as_deref()) {
                        let c = self.net.conns.get_mut(&tok).expect("connection");
                        c.send(&Msg::Refused(why.to_string()));
                        c.closing = true;
                        return;
                    }
                }
                (None, _) => {
                    c.send(&Msg::Refused("hello first".into()));
                    c.closing = true;
                    return;
                }
                (Some(Peer::Server(server)), Msg::Forward { op, incarnation, fwd }) => {
                    self.reply_links.insert((server, incarnation), tok);
                    self.step(ServerInput::Request { origin: Origin::Peer { server, incarnation, op }, fwd });
                }
                (Some(Peer::Admin), Msg::Drain) => {
                    c.send(&Msg::Draining);
                    tracing::info!(peer = %c.addr, "told to drain");
                    self.begin_drain();
                }
                (Some(Peer::Client(_)), Msg::Forward { op, fwd, .. }) => {
                    let w = self.next_waiter;
                    self.next_waiter += 1;
                    self.waiters.insert(w, Waiter::Lib { conn: tok, op });
                    self.step(ServerInput::Request { origin: Origin::Client(w), fwd });
                }
                (Some(Peer::Master), Msg::Master(m)) => self.step(ServerInput::Master(m)),
                (Some(_), Msg::InfoRequest) => {
                    c.send(&Msg::Info(Box::new(self.cfg.cluster_info(self.core.topo(&self.st)))));
                }
                (Some(p), m) => {
                    tracing::warn!(peer = ?p, msg = ?m, "unexpected node message; closing");
                    c.dead = true;
                    return;
                }
            }
        }
    }

    /// Checks a node's hello; on success the connection is that node's.
    pub(super) fn welcome(&mut self, tok: Token, from: Peer, secret: Option<&str>) -> Result<(), Refusal> {
        let (ip, channel) = (self.net.conns[&tok].addr.ip(), self.net.conns[&tok].channel());
        if let Err(why) = self.cfg.admit(self.core.topo(&self.st), from, secret, ip, channel) {
            tracing::warn!(peer = %self.net.conns[&tok].addr, ?from, %why, "node hello refused");
            return Err(why);
        }
        match from {
            Peer::Server(s) => {
                self.peers_in.insert(s, tok);
            }
            Peer::Master => self.master_in = Some(tok),
            Peer::Client(_) | Peer::Admin => {}
        }
        let c = self.net.conns.get_mut(&tok).expect("connection");
        c.proto = Proto::Node { peer: Some(from) };
        c.send(&Msg::Welcome);
        Ok(())
    }
}
