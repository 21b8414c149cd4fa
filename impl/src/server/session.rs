//! What the server keeps per RESP connection and per request it started.

use super::commands::Kind;
use crate::resp::Proto;
use failgroup_model::{ClientId, Op, OpResult, Slot};
use mio::Token;

/// Who waits for the reply to a core request the runtime started.
#[derive(Clone, Copy, Debug)]
pub(super) enum Waiter {
    /// Part `part` of command `cmd` in flight on a RESP connection.
    Resp { conn: Token, cmd: u64, part: usize },
    /// A library client's request `op` on a node connection.
    Lib { conn: Token, op: u64 },
}

/// A data command in flight on a RESP connection.
pub(super) struct InFlight {
    /// Its number on the connection.
    pub(super) id: u64,
    pub(super) kind: Kind,
    pub(super) results: Vec<Option<OpResult>>,
    pub(super) left: usize,
    /// An EXEC: each queued command's reply kind and how many of the
    /// transaction's operations are its (after the WATCH guards).
    pub(super) exec: Option<Vec<(Kind, usize)>>,
    /// How many WATCH guards an EXEC's atomic operation starts with.
    pub(super) guards: usize,
    /// A WATCH: the keys whose versions come back.
    pub(super) watching: Vec<Vec<u8>>,
    /// Hashes of the keys it names: a later command of the connection
    /// naming one of them waits for it (see `pipeline::may_start`).
    pub(super) keys: Vec<u64>,
    /// Nothing after it starts before it is done (EXEC, WATCH, FLUSHDB,
    /// a whole-database read): its order with them matters whatever the keys.
    pub(super) barrier: bool,
    /// Its reply once done, while a command before it is not.
    pub(super) reply: Option<Vec<u8>>,
    /// When it started, for INFO commandstats and the slow log.
    pub(super) cost: Option<super::slowlog::Started>,
}

impl InFlight {
    /// A command of `n` operations (an EXEC's: `exec`).
    pub(super) fn new(kind: Kind, n: usize, exec: Option<Vec<(Kind, usize)>>) -> InFlight {
        InFlight {
            id: 0,
            kind,
            results: vec![None; n],
            left: n,
            exec,
            guards: 0,
            watching: Vec::new(),
            keys: Vec::new(),
            barrier: false,
            reply: None,
            cost: None,
        }
    }
}

/// A transaction being queued (MULTI until EXEC or DISCARD).
#[derive(Default)]
pub(super) struct Multi {
    /// Every queued command's operations, in order: one atomic operation.
    pub(super) ops: Vec<Op>,
    pub(super) cmds: Vec<(Kind, usize)>,
    /// The one slot of every key queued.
    pub(super) slot: Option<Slot>,
    /// A command was refused while queued: EXEC aborts.
    pub(super) dirty: bool,
}

/// A RESP connection's session.
pub(super) struct Session {
    pub(super) client: ClientId,
    pub(super) seq: u64,
    pub(super) authed: bool,
    pub(super) name: Option<Vec<u8>>,
    pub(super) id: u64,
    /// RESP2 until HELLO 3.
    pub(super) proto: Proto,
    pub(super) multi: Option<Multi>,
    /// WATCHed keys and the versions read (until EXEC, DISCARD, UNWATCH).
    pub(super) watched: Vec<(Vec<u8>, u64)>,
    /// The last command, as Redis names it (CLIENT LIST's `cmd`).
    pub(super) last_cmd: String,
    /// The start of the data command being handed to the core.
    pub(super) cost: Option<super::slowlog::Started>,
    /// Data commands in flight, in the order they came: replies go out in
    /// that order. Commands on different keys run at once (pipelined);
    /// a command on a key waits for the earlier ones on it.
    pub(super) inflight: std::collections::VecDeque<InFlight>,
    /// Numbers the connection's commands in flight.
    pub(super) next_cmd: u64,
    /// A command decoded that waits for earlier ones before it starts.
    pub(super) stalled: Option<Vec<Vec<u8>>>,
    /// The input holds no whole command: wait for more bytes.
    pub(super) starved: bool,
    /// How many of `inflight` are barriers (kept with it by `start` and
    /// `finish`, so that asking is not a walk of the queue per command).
    pub(super) barriers: usize,
    /// The user logged in (`default` until AUTH says otherwise).
    pub(super) user: String,
    /// The user may only read: writes are refused with NOPERM.
    pub(super) readonly: bool,
    /// Failed AUTHs on this connection: each makes its next command wait
    /// longer (slowing a password guesser down).
    pub(super) auth_failures: u32,
    /// Commands wait until then (after a failed AUTH).
    pub(super) held_until: Option<std::time::Instant>,
}

impl Session {
    /// A new connection's session, logged in as `default` when `authed`.
    pub(super) fn new(client: failgroup_model::ClientId, id: u64, authed: bool) -> Session {
        Session {
            client,
            seq: 0,
            authed,
            name: None,
            id,
            proto: crate::resp::Proto::Resp2,
            multi: None,
            watched: Vec::new(),
            last_cmd: String::new(),
            cost: None,
            inflight: Default::default(),
            next_cmd: 0,
            stalled: None,
            starved: false,
            barriers: 0,
            user: "default".into(),
            readonly: false,
            auth_failures: 0,
            held_until: None,
        }
    }

    /// A failed AUTH: the connection's next command waits 100 ms per
    /// failure so far, at most 2 s.
    pub(super) fn auth_failed(&mut self) {
        self.auth_failures += 1;
        let wait = std::time::Duration::from_millis(100 * self.auth_failures.min(20) as u64);
        self.held_until = Some(std::time::Instant::now() + wait);
    }
}

/// Commands of one connection in flight at most.
pub(super) const MAX_IN_FLIGHT: usize = 128;

impl Session {
    /// Whether another command may be looked at now: fewer than
    /// [`MAX_IN_FLIGHT`] in flight and no barrier among them.
    pub(super) fn may_take_more(&self) -> bool {
        self.inflight.len() < MAX_IN_FLIGHT && self.barriers == 0
    }

    /// Puts `f` in flight, after the others.
    pub(super) fn start(&mut self, f: InFlight) {
        self.barriers += usize::from(f.barrier);
        self.inflight.push_back(f);
    }

    /// Takes the command at `at` out of flight.
    pub(super) fn finish(&mut self, at: usize) {
        if let Some(f) = self.inflight.remove(at) {
            self.barriers -= usize::from(f.barrier);
        }
    }
}

/// Replies waiting to be sent beyond which a connection's commands pause.
pub(super) const OUTPUT_PAUSE: usize = 4 * 1024 * 1024;
