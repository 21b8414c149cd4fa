//! What each action does to a state.

use super::model::ClusterModel;
use super::world::*;
use failgroup_model::*;

impl ClusterModel {
    pub(super) fn apply(&self, last: &ClusterState, action: Action) -> Option<ClusterState> {
        let mut st = last.clone();
        match action {
            Action::Deliver(from, to) => {
                let env = st.take(from, to, 0)?;
                self.deliver(&mut st, env);
            }
            Action::Drop(from, to, i) => {
                if !st.is_cut(from, to) {
                    st.budget.losses -= 1;
                }
                st.take(from, to, i)?;
            }
            Action::Duplicate(from, to, i) => {
                st.budget.duplicates -= 1;
                let env = st.peek(from, to, i)?;
                st.send(from, to, env.msg);
            }
            Action::Delay(from, to) => {
                if to == Addr::Store {
                    st.budget.store_delays -= 1;
                } else {
                    st.budget.delays -= 1;
                }
                let now = st.now;
                st.net.get_mut(&(from, to))?.front_mut()?.0 = now + 1;
            }
            Action::FailStore(from, applied) => {
                st.budget.store_failures -= 1;
                let env = st.take(from, Addr::Store, 0)?;
                let ModelMsg::StoreCall { from: holder, tag, op } = env.msg else { return None };
                if applied {
                    // It took effect; the answer is lost with the connection.
                    let store_now = Time(st.now + st.store_ahead);
                    st.store.execute(holder, op, store_now);
                }
                let reply = StoreReply::Failed(if applied { "connection lost" } else { "store unavailable" }.into());
                st.send(Addr::Store, from, ModelMsg::StoreAnswer { tag, reply });
            }
            Action::Tick => self.tick(&mut st, None),
            Action::Lag(s) => self.tick(&mut st, Some(s)),
            Action::CatchUp(s) => st.servers[s.0 as usize].clock += 1,
            Action::Fire(timer) => match timer {
                Timer::Server(s, t) => {
                    st.servers[s.0 as usize].timers.cancel(t);
                    self.server_step(&mut st, s, ServerInput::Timer(t));
                }
                Timer::Twin(t) => {
                    let (s, n) = st.twin.as_mut()?;
                    n.timers.cancel(t);
                    let s = *s;
                    self.process_step(&mut st, Addr::Twin(s), ServerInput::Timer(t));
                }
                Timer::Master(t) => {
                    st.master_timers.cancel(t);
                    self.master_step(&mut st, MasterInput::Timer(t));
                }
                Timer::Lease(i) => self.lease_step(&mut st, i),
                Timer::Client(c, t) => {
                    st.clients[c as usize].timers.cancel(t);
                    self.client_step(&mut st, c, ClientInput::Timer(t));
                }
            },
            Action::Invoke(c) => {
                let node = &mut st.clients[c as usize];
                let op = self.script(c, node.invoked);
                node.invoked += 1;
                let seq = node.invoked as u64;
                node.current = Some((seq, op.clone()));
                let k = self.key_index(op.key());
                st.testers[k].invoke(c, op.clone());
                self.client_step(&mut st, c, ClientInput::Invoke { seq, op });
            }
            Action::Move(slot, to) => {
                st.budget.moves -= 1;
                let change =
                    TopologyChange::MoveSlots { ranges: vec![[slot.0, slot.0]], to: self.topology.name(to).into() };
                self.master_step(&mut st, MasterInput::Change(change));
            }
            Action::Drain(s) => {
                st.budget.drains -= 1;
                self.server_step(&mut st, s, ServerInput::Drain);
            }
            Action::Crash(s) | Action::Exit(s) => {
                match action {
                    Action::Exit(_) => st.seen.drained_exit = true,
                    _ => st.budget.crashes -= 1,
                }
                let n = &mut st.servers[s.0 as usize];
                n.status = ProcStatus::Crashed;
                n.timers.clear();
                // What was on the way to it is gone; its calls already on the
                // way to the store may still land.
                st.disconnect(Addr::Server(s));
                st.open.retain(|(at, _)| *at != Addr::Server(s));
            }
            Action::Restart(s) => {
                let n = &mut st.servers[s.0 as usize];
                n.status = ProcStatus::Up;
                n.clock = st.now;
                n.incarnation += 1;
                let incarnation = n.incarnation;
                self.server_step(&mut st, s, ServerInput::Start { incarnation });
            }
            Action::Pause(s) => {
                st.budget.pauses -= 1;
                st.servers[s.0 as usize].status = ProcStatus::Paused;
            }
            Action::Suspend(s) => {
                st.budget.suspends -= 1;
                st.servers[s.0 as usize].status = ProcStatus::Suspended;
            }
            Action::Resume(s) => {
                let now = st.now;
                let n = &mut st.servers[s.0 as usize];
                n.clock = self.clock_of(n, now);
                n.status = ProcStatus::Up;
            }
            Action::Replace(s) => {
                st.budget.twins -= 1;
                let i = s.0 as usize;
                let fresh = ModelServer {
                    state: ServerState::default(),
                    status: ProcStatus::Up,
                    incarnation: st.servers[i].incarnation + 1,
                    clock: st.now,
                    timers: Timers::new(),
                };
                let first = std::mem::replace(&mut st.servers[i], fresh);
                st.twin = Some((s, first));
                // What the first process took is its to answer.
                st.open = std::mem::take(&mut st.open)
                    .into_iter()
                    .map(|(at, o)| (if at == Addr::Server(s) { Addr::Twin(s) } else { at }, o))
                    .collect();
                // The first process keeps its connection to the store; the
                // address, and what comes to it, is the second's now.
                for (from, to) in [(Addr::Server(s), Addr::Store), (Addr::Store, Addr::Server(s))] {
                    if let Some(chan) = st.net.remove(&(from, to)) {
                        let rename = |a: Addr| if a == Addr::Server(s) { Addr::Twin(s) } else { a };
                        st.net.insert((rename(from), rename(to)), chan);
                    }
                }
                let incarnation = st.servers[i].incarnation;
                self.server_step(&mut st, s, ServerInput::Start { incarnation });
            }
            Action::ResumeTwin => {
                let now = st.now;
                let n = &mut st.twin.as_mut()?.1;
                n.clock = self.clock_of(n, now);
                n.status = ProcStatus::Up;
            }
            Action::CatchUpTwin => st.twin.as_mut()?.1.clock += 1,
            Action::Evict(s, slot, key) => {
                st.budget.evictions -= 1;
                st.servers[s.0 as usize].state.drop_cached(slot, &CacheKey::new(&key));
            }
            Action::StepStoreClock => {
                st.budget.clock_steps -= 1;
                st.store_ahead += self.cfg.protocol().timing.lease;
                st.store_clock_moved();
            }
            Action::CrashMaster => {
                st.budget.master_crashes -= 1;
                st.master = None;
                st.master_timers.clear();
                st.disconnect(Addr::Master);
                st.retire_master_channels();
                // With standbys, the acting process is the one that crashes.
                if let Some(i) = st.acting.take() {
                    let p = &mut st.masters[i as usize];
                    p.up = false;
                    p.lease = LeaseState::default();
                }
            }
            // With standbys, a crashed process comes back as a standby.
            Action::RestartMaster if !st.masters.is_empty() => {
                let run = st.masters.iter().map(|p| p.run).max().unwrap_or(0) + 1;
                let now = st.now;
                let i = st.masters.iter().position(|p| !p.up)?;
                st.masters[i] = MasterProc { lease: LeaseState::default(), up: true, run, next_tick: now };
            }
            Action::RestartMaster => {
                st.incarnation += 1;
                st.master = Some(self.master.initial_state());
                let incarnation = st.incarnation;
                let topology = st.saved_topology.clone();
                self.master_step(&mut st, MasterInput::Start { incarnation, topology });
            }
            Action::Cut(a, b) => {
                st.budget.cuts -= 1;
                st.cut = Some((a, b));
            }
            Action::Heal => st.cut = None,
        }
        Some(st)
    }
}
