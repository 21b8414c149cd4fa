//! What may happen next in a state (`actions`), one family at a time, and
//! what each action does (`next_state`).

use super::linearizer::Linearizer;
use super::model::ClusterModel;
use super::world::*;
use failgroup_model::*;
use std::collections::{BTreeMap, BTreeSet};

impl ClusterModel {
    pub(super) fn initial_states(&self) -> Vec<ClusterState> {
        let c = &self.cfg;
        let mut st = ClusterState {
            now: 0,
            master: Some(self.master.initial_state()),
            master_timers: Timers::new(),
            incarnation: 1,
            servers: self
                .topology
                .servers()
                .map(|_| ModelServer {
                    state: ServerState::default(),
                    status: ProcStatus::Up,
                    incarnation: 1,
                    clock: 0,
                    timers: Timers::new(),
                })
                .collect(),
            clients: (0..c.clients)
                .map(|_| ClientNode {
                    state: ClientState::default(),
                    timers: Timers::new(),
                    invoked: 0,
                    current: None,
                    completed: 0,
                    failed: false,
                })
                .collect(),
            twin: None,
            store: MemStore::new(c.mode, c.mutant),
            store_ahead: 0,
            net: BTreeMap::new(),
            budget: c.faults.clone(),
            cut: None,
            testers: (0..c.keys).map(|_| Linearizer::default()).collect(),
            open: BTreeSet::new(),
            seen: Seen::default(),
            saved_topology: None,
            masters: (0..=c.standbys)
                .filter(|_| c.standbys > 0)
                .map(|i| MasterProc { lease: LeaseState::default(), up: true, run: i as u64 + 1, next_tick: 0 })
                .collect(),
            acting: None,
        };
        // Start-up is not interesting: servers take their rights and the
        // master's first probe round settles before the checker begins.
        for s in self.topology.servers() {
            self.server_step(&mut st, s, ServerInput::Start { incarnation: 1 });
        }
        if st.masters.is_empty() {
            self.master_step(&mut st, MasterInput::Start { incarnation: 1, topology: None });
        } else {
            // The first process takes the lease, the others watch it.
            st.incarnation = 0;
            for i in 0..st.masters.len() {
                self.lease_step(&mut st, i as u8);
            }
        }
        while let Some(&(from, to)) = st.net.keys().next() {
            let env = st.take(from, to, 0).expect("message");
            self.deliver(&mut st, env);
        }
        st.seen = Seen::default();
        vec![st]
    }

    /// Every action possible in `st`, one family at a time (the order is
    /// the seeded walks' too): messages, timers and the clock, node faults
    /// and recoveries, invocations.
    pub(super) fn possible_actions(&self, st: &ClusterState, actions: &mut Vec<Action>) {
        let (receiver, overdue) = self.message_actions(st, actions);
        let timers_due = self.timer_actions(st, overdue, actions);
        let urgent = timers_due || overdue;
        // Operations start, and nodes restart or resume, between a tick's
        // work, when nothing is in flight or due: when they do still varies
        // over the ticks, and the interleavings saved are many.
        let quiet = (receiver.is_none() && !urgent) || !self.cfg.reductions;
        // A crashed server may also restart while the only messages in
        // flight are to it: whether one reaches the new process or is
        // refused first is a race the reductions must keep (a restart
        // commutes with deliveries to others, not with those to itself).
        let only_to = match receiver {
            Some(Addr::Server(s))
                if !timers_due
                    && st.net.keys().all(|(f, t)| !self.deliverable(st, *f, *t) || *t == Addr::Server(s)) =>
            {
                Some(s)
            }
            _ => None,
        };
        self.node_actions(st, quiet, only_to, actions);
        self.invocations(st, actions);
    }

    /// Deliveries, and the faults of messages: held back, lost,
    /// duplicated, a store call failed. Returns the receiver deliveries are
    /// offered to and whether a message is overdue.
    fn message_actions(&self, st: &ClusterState, actions: &mut Vec<Action>) -> (Option<Addr>, bool) {
        let c = &self.cfg;
        let faults = st.now < c.fault_horizon;
        // Deliveries to different receivers commute (a delivery changes only
        // its receiver, the channels and, for the store, the store), so when
        // messages wait for several receivers only those to the first one are
        // offered: the others follow in later steps. Every property checked
        // is either stable (once violated, violated for good) or about one
        // node's own state, which this reduction preserves.
        let mut overdue = false;
        let receiver = st.net.keys().filter(|(from, to)| self.deliverable(st, *from, *to)).map(|(_, to)| *to).min();
        for (&(from, to), chan) in &st.net {
            let lossy = from != Addr::Store && to != Addr::Store;
            let across_cut = st.is_cut(from, to);
            if self.deliverable(st, from, to) {
                if Some(to) == receiver || !c.reductions {
                    actions.push(Action::Deliver(from, to));
                }
                overdue |= chan[0].0 + c.max_delay <= st.now;
            }
            let budget = if to == Addr::Store { st.budget.store_delays } else { st.budget.delays };
            if faults && budget > 0 && chan[0].0 <= st.now {
                actions.push(Action::Delay(from, to));
            }
            if to == Addr::Store && faults && st.budget.store_failures > 0 {
                actions.push(Action::FailStore(from, false));
                actions.push(Action::FailStore(from, true));
            }
            for i in 0..chan.len() {
                if across_cut || (faults && lossy && st.budget.losses > 0) {
                    actions.push(Action::Drop(from, to, i));
                }
                if faults && lossy && st.budget.duplicates > 0 {
                    actions.push(Action::Duplicate(from, to, i));
                }
            }
        }
        (receiver, overdue)
    }

    /// Due timers and the clock (a tick, a lagging server's). Returns
    /// whether a timer is due.
    fn timer_actions(&self, st: &ClusterState, overdue: bool, actions: &mut Vec<Action>) -> bool {
        let c = &self.cfg;
        let faults = st.now < c.fault_horizon;
        // Due timers fire one at a time in a fixed order (node, then timer),
        // interleaved freely with deliveries: timers of different nodes
        // touch only their own node, so their mutual order adds states but
        // no behaviour.
        let due = self.due_timers(st);
        let due_any = !due.is_empty();
        let urgent = due_any || overdue;
        if c.reductions {
            actions.extend(due.into_iter().next().map(Action::Fire));
        } else {
            actions.extend(due.into_iter().map(Action::Fire));
        }
        if !urgent && self.clock_runs(st) {
            actions.push(Action::Tick);
            if c.drift > 0 {
                for (i, n) in st.servers.iter().enumerate() {
                    if n.status != ProcStatus::Crashed && st.now + 1 - n.clock <= c.drift && faults {
                        actions.push(Action::Lag(ServerId(i as u16)));
                    }
                }
            }
        }
        due_any
    }

    /// Servers' clocks catching up, crashes, pauses, suspends, second
    /// processes, restarts and resumes (only when `quiet`), the store's clock,
    /// the master's crash and restart, cut links.
    fn node_actions(&self, st: &ClusterState, quiet: bool, only_to: Option<ServerId>, actions: &mut Vec<Action>) {
        let c = &self.cfg;
        let faults = st.now < c.fault_horizon;
        for (i, n) in st.servers.iter().enumerate() {
            let s = ServerId(i as u16);
            if n.clock < st.now && matches!(n.status, ProcStatus::Up | ProcStatus::Paused) {
                actions.push(Action::CatchUp(s));
            }
            match n.status {
                ProcStatus::Up if faults && st.budget.crashes > 0 => actions.push(Action::Crash(s)),
                // A crashed server may come back until the restart horizon
                // (late enough to be served for a while by its failover).
                ProcStatus::Crashed if (quiet || only_to == Some(s)) && st.now < c.restart_horizon => {
                    actions.push(Action::Restart(s))
                }
                // Paused nodes, too, come back before the restart horizon, so
                // that the views settle before time is up (`views agree`).
                ProcStatus::Paused if quiet && st.now < c.restart_horizon => actions.push(Action::Resume(s)),
                _ => {}
            }
            if n.status == ProcStatus::Up && faults && st.budget.drains > 0 && !n.state.draining {
                actions.push(Action::Drain(s));
            }
            if n.status == ProcStatus::Up && n.state.drained() {
                actions.push(Action::Exit(s));
            }
            if n.status == ProcStatus::Up && faults && st.budget.pauses > 0 {
                actions.push(Action::Pause(s));
            }
            if n.status == ProcStatus::Up && faults && st.budget.suspends > 0 {
                actions.push(Action::Suspend(s));
            }
            if n.status == ProcStatus::Suspended && quiet && st.now < c.restart_horizon {
                actions.push(Action::Resume(s));
            }
            // A second process of a paused server's identity.
            let paused = matches!(n.status, ProcStatus::Paused | ProcStatus::Suspended);
            if paused && faults && st.budget.twins > 0 && st.twin.is_none() {
                actions.push(Action::Replace(s));
            }
        }
        if let Some((_, n)) = &st.twin {
            if n.clock < st.now && n.status == ProcStatus::Up {
                actions.push(Action::CatchUpTwin);
            }
            if n.status != ProcStatus::Up && quiet && st.now < c.restart_horizon {
                actions.push(Action::ResumeTwin);
            }
        }
        if faults && st.budget.clock_steps > 0 {
            actions.push(Action::StepStoreClock);
        }
        // Any server's copy of any key may be evicted at any moment.
        if st.budget.evictions > 0 {
            for (i, n) in st.servers.iter().enumerate() {
                for (slot, m) in &n.state.cache {
                    for k in m.keys() {
                        actions.push(Action::Evict(ServerId(i as u16), *slot, k.key.to_vec()));
                    }
                }
            }
        }
        if faults && st.budget.master_crashes > 0 && st.master.is_some() {
            actions.push(Action::CrashMaster);
        }
        // The operator moves one slot to another server (issue 17).
        if let Some(m) = st.master.as_ref().filter(|m| faults && st.budget.moves > 0 && m.proposed.is_none()) {
            for slot in (0..m.topology.slot_count()).map(Slot) {
                for to in m.topology.servers().filter(|&s| s != m.topology.owner(slot)) {
                    actions.push(Action::Move(slot, to));
                }
            }
        }
        let restartable = match st.masters.is_empty() {
            true => st.master.is_none(),
            false => st.masters.iter().any(|p| !p.up) && quiet,
        };
        if restartable && st.now < c.restart_horizon {
            actions.push(Action::RestartMaster);
        }
        if faults && st.budget.cuts > 0 && st.cut.is_none() {
            let nodes: Vec<Addr> = std::iter::once(Addr::Master)
                .chain(self.topology.servers().map(Addr::Server))
                .chain((0..c.clients).map(Addr::Client))
                .collect();
            for (i, &a) in nodes.iter().enumerate() {
                for &b in &nodes[i + 1..] {
                    if !matches!((a, b), (Addr::Client(_), Addr::Client(_)) | (Addr::Master, Addr::Client(_))) {
                        actions.push(Action::Cut(a, b));
                    }
                }
            }
        }
        if st.cut.is_some() {
            actions.push(Action::Heal);
        }
    }

    fn invocations(&self, st: &ClusterState, actions: &mut Vec<Action>) {
        let c = &self.cfg;
        // Operations start at any moment: while messages are in flight and
        // other clients' operations are pending.
        if st.now < c.op_horizon {
            for (i, n) in st.clients.iter().enumerate() {
                if n.current.is_none() && !n.failed && n.invoked < c.ops_per_client {
                    actions.push(Action::Invoke(i as u16));
                }
            }
        }
    }
}
