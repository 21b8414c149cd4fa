//! Who may act and when: the clocks (a tick, a lagging server, a
//! suspended host's clock), due timers, which channels may deliver, and
//! when a run is finished.

use super::config::*;
use super::model::ClusterModel;
use super::world::*;
use failgroup_model::*;

impl ClusterModel {
    /// The clock runs until `max_time`, and past it (up to a drain bound)
    /// while an operation is pending, so that every operation has the time
    /// its timeouts need to end, and `requests complete` can hold.
    pub(super) fn clock_runs(&self, st: &ClusterState) -> bool {
        let pending =
            st.clients.iter().any(|c| c.current.is_some()) || st.open.iter().any(|(at, _)| self.running(st, *at));
        st.now < self.cfg.max_time || (pending && st.now < self.cfg.max_time + DRAIN)
    }

    /// Time is up and nothing is left to deliver (messages to a node
    /// paused for good never arrive) or to fire: where a run ends.
    pub(super) fn finished(&self, st: &ClusterState) -> bool {
        !self.clock_runs(st)
            && !st.net.keys().any(|(from, to)| self.deliverable(st, *from, *to))
            && self.due_timers(st).is_empty()
    }

    /// Whether the server process at `at` runs (not crashed, not paused).
    pub(super) fn running(&self, st: &ClusterState, at: Addr) -> bool {
        match at {
            Addr::Server(s) => st.servers[s.0 as usize].status == ProcStatus::Up,
            Addr::Twin(_) => st.twin.as_ref().is_some_and(|(_, n)| n.status == ProcStatus::Up),
            _ => false,
        }
    }

    pub(super) fn deliverable(&self, st: &ClusterState, from: Addr, to: Addr) -> bool {
        let paused = |a: Addr| match a {
            Addr::Server(s) => matches!(st.servers[s.0 as usize].status, ProcStatus::Paused | ProcStatus::Suspended),
            Addr::Twin(_) => st.twin.as_ref().is_some_and(|(_, n)| n.status != ProcStatus::Up),
            _ => false,
        };
        !paused(to) && !st.is_cut(from, to)
    }

    pub(super) fn due_timers(&self, st: &ClusterState) -> Vec<Timer> {
        let mut due = Vec::new();
        for (i, n) in st.servers.iter().enumerate() {
            if n.status == ProcStatus::Up {
                let s = ServerId(i as u16);
                due.extend(n.timers.due(Time(n.clock)).map(|t| Timer::Server(s, t)));
            }
        }
        if let Some((_, n)) = st.twin.as_ref().filter(|(_, n)| n.status == ProcStatus::Up) {
            due.extend(n.timers.due(Time(n.clock)).map(Timer::Twin));
        }
        if st.master.is_some() {
            due.extend(st.master_timers.due(Time(st.now)).map(Timer::Master));
        }
        for (i, p) in st.masters.iter().enumerate() {
            if p.up && p.next_tick <= st.now {
                due.push(Timer::Lease(i as u8));
            }
        }
        for (c, n) in st.clients.iter().enumerate() {
            due.extend(n.timers.due(Time(st.now)).map(|t| Timer::Client(c as u16, t)));
        }
        due
    }

    /// What a server's clock reads at global time `now`: a suspended host's
    /// clock stands still while it sleeps and, as CLOCK_BOOTTIME does,
    /// counts the time slept when it wakes (unless the mutant says not).
    pub(super) fn clock_of(&self, n: &ModelServer, now: u64) -> u64 {
        if n.status == ProcStatus::Suspended && self.cfg.mutant != Some(Mutant::SuspendStopsClock) {
            n.clock.max(now.saturating_sub(self.cfg.drift))
        } else {
            n.clock
        }
    }

    pub(super) fn tick(&self, st: &mut ClusterState, lagging: Option<ServerId>) {
        st.now += 1;
        st.store_clock_moved();
        // A suspended host's clock stands still.
        for (i, n) in st.servers.iter_mut().enumerate() {
            if lagging != Some(ServerId(i as u16)) && n.status != ProcStatus::Suspended {
                n.clock += 1;
            }
        }
        if let Some((_, n)) = st.twin.as_mut().filter(|(_, n)| n.status != ProcStatus::Suspended) {
            n.clock += 1;
        }
    }
}
