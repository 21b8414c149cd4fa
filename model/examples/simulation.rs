//! A second runtime for the core: a deterministic, single-threaded
//! simulation in virtual time, written only against `failgroup-model`'s
//! public API (no sockets, threads or clocks). Three servers in one group,
//! one client, the in-memory store; messages travel through one queue, and
//! time jumps to the next timer when nothing is in flight (`Timers`, the
//! driver every runtime of the core shares).
//!
//! It runs a SET and a GET through the key's owner, then stops the owner:
//! the client's send times out and it fails over to a group peer
//! (c10-c12), which forwards to the silent owner (c15) and gets no answer;
//! with no master to verify the owner offline (c19), nobody may serve the
//! slot, and the request ends in an error the client sees. `cargo run -p
//! failgroup-model --example simulation` prints each completed operation;
//! `cargo test` runs the same as a test (`test = true` in Cargo.toml).

use failgroup_model::*;
use std::collections::VecDeque;
use std::sync::Arc;

/// What travels between the simulated nodes.
enum Delivery {
    ToServer(ServerId, ServerInput),
    ToClient(ClientInput),
}

struct Node {
    core: Server,
    st: ServerState,
    timers: Timers<ServerTimer>,
    up: bool,
}

struct Sim {
    nodes: Vec<Node>,
    client: Client,
    cst: ClientState,
    ctimers: Timers<ClientTimer>,
    store: MemStore,
    now: Time,
    queue: VecDeque<Delivery>,
    /// Operations completed: (seq, result).
    done: Vec<(u64, OpResult)>,
}

impl Sim {
    fn new() -> Sim {
        let topology = Arc::new(ClusterSpec::local(3, 1, 7101, SLOTS).validate().expect("a valid topology"));
        let config = ProtocolConfig::default();
        let nodes = topology
            .servers()
            .map(|id| Node {
                core: Server::new(id, topology.clone(), config.clone()),
                st: ServerState::default(),
                timers: Timers::new(),
                up: true,
            })
            .collect();
        let client = Client::new(ClientId(1), topology, config);
        let mut sim = Sim {
            nodes,
            client,
            cst: ClientState::default(),
            ctimers: Timers::new(),
            store: MemStore::default(),
            now: Time(0),
            queue: VecDeque::new(),
            done: Vec::new(),
        };
        for i in 0..sim.nodes.len() {
            let id = ServerId(i as u16);
            sim.queue.push_back(Delivery::ToServer(id, ServerInput::Start { incarnation: 1 }));
        }
        sim.settle();
        sim
    }

    /// Delivers everything in flight, in order.
    fn settle(&mut self) {
        while let Some(d) = self.queue.pop_front() {
            match d {
                Delivery::ToServer(id, input) => self.server_step(id, input),
                Delivery::ToClient(input) => self.client_step(input),
            }
        }
    }

    fn server_step(&mut self, id: ServerId, input: ServerInput) {
        let node = &mut self.nodes[id.0 as usize];
        if !node.up {
            return; // a stopped server hears nothing
        }
        let mut out = Vec::new();
        node.core.step(&mut node.st, self.now, input, &mut out);
        for o in out {
            if node.timers.carry_out(&o) {
                continue;
            }
            match o {
                ServerOutput::Store { tag, op } => {
                    let me = Holder { server: id, incarnation: 1 };
                    let reply = self.store.execute(me, op, self.now);
                    self.queue.push_back(Delivery::ToServer(id, ServerInput::Store { tag, reply }));
                }
                ServerOutput::Forward { to, op, incarnation, fwd } => {
                    let origin = Origin::Peer { server: id, incarnation, op };
                    self.queue.push_back(Delivery::ToServer(to, ServerInput::Request { origin, fwd }));
                }
                ServerOutput::Reply { to: Origin::Peer { server, incarnation, op }, result } => {
                    let back = ServerInput::ForwardReply { from: id, incarnation, op, result };
                    self.queue.push_back(Delivery::ToServer(server, back));
                }
                ServerOutput::Reply { to: Origin::Client(seq), result } => {
                    let reply = ClientInput::Reply { seq, from: id, result };
                    self.queue.push_back(Delivery::ToClient(reply));
                }
                // No master in this simulation: reports go nowhere.
                _ => {}
            }
        }
    }

    fn client_step(&mut self, input: ClientInput) {
        let mut out = Vec::new();
        self.client.step(&mut self.cst, self.now, input, &mut out);
        for o in out {
            if self.ctimers.carry_out(&o) {
                continue;
            }
            match o {
                ClientOutput::Send { to, req, op } => {
                    let fwd = Forwarded { req, op, hops: 0 };
                    let request = ServerInput::Request { origin: Origin::Client(req.seq), fwd };
                    self.queue.push_back(Delivery::ToServer(to, request));
                }
                ClientOutput::Complete { seq, result } => self.done.push((seq, result)),
                ClientOutput::ToMaster(_) => {}
                ClientOutput::SetTimer { .. } | ClientOutput::CancelTimer(_) => {}
            }
        }
    }

    /// Moves virtual time to the next deadline and fires what is due.
    fn advance(&mut self) -> bool {
        let next = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .filter_map(|n| n.timers.next_deadline())
            .chain(self.ctimers.next_deadline())
            .min();
        let Some(at) = next else { return false };
        self.now = self.now.max(at);
        while let Some(t) = self.ctimers.pop_due(self.now) {
            self.queue.push_back(Delivery::ToClient(ClientInput::Timer(t)));
        }
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].timers.pop_due(self.now) {
                self.queue.push_back(Delivery::ToServer(ServerId(i as u16), ServerInput::Timer(t)));
            }
        }
        self.settle();
        true
    }

    /// Runs operation `seq` until it completes (or `max_steps` timer rounds).
    fn run(&mut self, seq: u64, op: Op, max_steps: usize) -> Option<OpResult> {
        self.queue.push_back(Delivery::ToClient(ClientInput::Invoke { seq, op }));
        self.settle();
        for _ in 0..max_steps {
            if let Some((_, r)) = self.done.iter().find(|(s, _)| *s == seq) {
                return Some(r.clone());
            }
            if !self.advance() {
                break;
            }
        }
        self.done.iter().find(|(s, _)| *s == seq).map(|(_, r)| r.clone())
    }
}

/// The story: what each operation returned.
fn story() -> Vec<(String, Option<OpResult>)> {
    let mut sim = Sim::new();
    let key = b"k".to_vec();
    let owner = sim.client.topology.owner(sim.client.topology.slot(&key));
    let mut log = Vec::new();
    let set = sim.run(1, Op::Set(key.clone(), b"v1".to_vec()), 10);
    log.push(("SET k v1 (to the owner)".to_string(), set));
    let get = sim.run(2, Op::Get(key.clone()), 10);
    log.push(("GET k".to_string(), get));
    // The owner stops: the client times out, fails over to a group peer,
    // which forwards to the silent owner in turn and gives up.
    sim.nodes[owner.0 as usize].up = false;
    let during = sim.run(3, Op::Set(key.clone(), b"v2".to_vec()), 200);
    log.push((format!("SET k v2 with the owner {owner} stopped"), during));
    log
}

fn main() {
    for (what, result) in story() {
        println!("{what}: {result:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_runs_in_a_second_runtime() {
        let log = story();
        assert_eq!(log[0].1, Some(OpResult::Ok), "{log:?}");
        assert_eq!(log[1].1, Some(OpResult::Value(Some(b"v1".to_vec()))), "{log:?}");
        // With the owner silent and no master to mark it offline, nobody
        // may serve its slot: the write fails, never half-applied as a
        // stale value.
        assert!(matches!(log[2].1, Some(OpResult::Err(_))), "{log:?}");
    }
}
