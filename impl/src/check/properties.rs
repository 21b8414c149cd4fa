//! The properties every run checks: safety (`always`), the liveness a
//! bounded run can state (`requests complete` where a run ends), and the
//! `sometimes` witnesses that show each safety property's interesting path
//! is reached.

use super::model::ClusterModel;
use super::world::*;
use failgroup_model::*;
use stateright::Property;

impl ClusterModel {
    pub(super) fn all_properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            // Safety, each paired below with a `sometimes` showing its
            // interesting path is reachable.
            Property::always("linearizable", |_, st: &ClusterState| st.testers.iter().all(|t| t.is_linearizable())),
            Property::always("one server per slot", |m: &ClusterModel, st: &ClusterState| {
                (0..m.topology.slot_count()).map(Slot).all(|slot| {
                    let serving = st.servers.iter().chain(st.twin.as_ref().map(|(_, n)| n)).filter(|n| {
                        n.status != ProcStatus::Crashed && n.state.serves(slot, Time(m.clock_of(n, st.now)))
                    });
                    serving.count() <= 1
                })
            }),
            Property::always("replies match requests", |_: &ClusterModel, st: &ClusterState| !st.seen.mismatched_reply),
            Property::always("fenced writes", |_: &ClusterModel, st: &ClusterState| !st.seen.deposed_write),
            Property::always("notices in order", |_: &ClusterModel, st: &ClusterState| !st.seen.view_regressed),
            Property::always("verified offline", |_: &ClusterModel, st: &ClusterState| !st.seen.unverified_offline),
            Property::always("temporary cache dropped", |m: &ClusterModel, st: &ClusterState| {
                st.servers.iter().enumerate().filter(|(_, n)| n.status != ProcStatus::Crashed).all(|(i, n)| {
                    n.state.cached_slots().all(|slot| {
                        let owner = m.servers[i].topo(&n.state).owner(slot);
                        // A right waiting for its batch of a hand-over is
                        // still served, and its cache with it.
                        let waits = n.state.hand_over_armed && n.state.rights.contains_key(&slot);
                        owner == ServerId(i as u16) || !n.state.view.is_online(owner) || waits
                    })
                })
            }),
            // Liveness, bounded: checked where the run ends (time is up and
            // everything in flight is delivered).
            // Every operation invoked has returned once time is up and
            // nothing is left to deliver or fire; with an error only if a
            // store call failed (its outcome then unknown).
            // Once time is up and nothing is left to deliver or fire: every
            // operation invoked has returned (with a result or an error),
            // and every request a running server process took has been
            // answered.
            Property::always("requests complete", |m: &ClusterModel, st: &ClusterState| {
                !m.finished(st)
                    || (st.clients.iter().all(|c| c.current.is_none())
                        && st.open.iter().all(|(at, _)| !m.running(st, *at)))
            }),
            // Once time is up and all is delivered, every running server's
            // view is the master's; but a draining one's, which the master
            // (having marked it offline) no longer keeps up to date, and
            // which only says where it passes requests on.
            Property::eventually("views agree", |m: &ClusterModel, st: &ClusterState| {
                if !m.finished(st) {
                    return false;
                }
                let Some(master) = &st.master else { return true };
                let serving = |n: &&ModelServer| n.status == ProcStatus::Up && !n.state.draining;
                st.servers.iter().enumerate().filter(|(_, n)| serving(n)).all(|(i, n)| {
                    m.topology
                        .servers()
                        .filter(|&s| s.0 as usize != i)
                        .all(|s| n.state.view.is_online(s) == master.is_online(s))
                })
            }),
            Property::sometimes("read another client's write", |_: &ClusterModel, st: &ClusterState| {
                st.seen.read_other_write
            }),
            Property::sometimes("failover served", |_: &ClusterModel, st: &ClusterState| st.seen.failover_served),
            Property::sometimes("marked offline", |_: &ClusterModel, st: &ClusterState| st.seen.marked_offline),
            Property::sometimes("handed back", |_: &ClusterModel, st: &ClusterState| st.seen.handed_back),
            Property::sometimes("owner recovered", |_: &ClusterModel, st: &ClusterState| st.seen.owner_recovered),
            Property::sometimes("notice applied", |_: &ClusterModel, st: &ClusterState| st.seen.notice_applied),
            Property::sometimes("forwarded", |_: &ClusterModel, st: &ClusterState| st.seen.forwarded),
        ];
        // The witness of `replies match requests`, where a restart can meet
        // a request still waiting at a peer (a pause, a slow store or a
        // second process holds it there).
        let f = &self.cfg.faults;
        if self.cfg.standbys > 0 {
            properties.push(Property::always("one acting master", |_: &ClusterModel, st: &ClusterState| {
                st.masters.iter().filter(|p| p.up && p.lease.acting(Time(st.now))).count() <= 1
            }));
            properties.push(Property::sometimes("standby took over", |_: &ClusterModel, st: &ClusterState| {
                st.seen.took_over
            }));
            if f.crashes > 0 {
                properties.push(Property::sometimes(
                    "failed over after a takeover",
                    |_: &ClusterModel, st: &ClusterState| st.seen.failed_over_after_takeover,
                ));
            }
        }
        if f.moves > 0 {
            properties.push(Property::sometimes("moved and served", |_: &ClusterModel, st: &ClusterState| {
                st.seen.moved_served
            }));
        }
        if f.drains > 0 {
            properties.push(Property::sometimes("drained and exited", |_: &ClusterModel, st: &ClusterState| {
                st.seen.drained_exit
            }));
            properties
                .push(Property::sometimes("passed to a leaving holder", |_: &ClusterModel, st: &ClusterState| {
                    st.seen.passed_to_leaving
                }));
            // A drain of a server holding two rights or more releases them
            // in batches (the checker's batch is one right).
            if usize::from(self.cfg.keys) > usize::from(self.cfg.servers) {
                properties
                    .push(Property::sometimes("handed over in batches", |_: &ClusterModel, st: &ClusterState| {
                        st.seen.batched_hand_over
                    }));
            }
        }
        if f.crashes > 0 && (f.pauses > 0 || f.suspends > 0 || f.store_delays > 0 || f.twins > 0) {
            properties.push(Property::sometimes("restart while forwarded", |_: &ClusterModel, st: &ClusterState| {
                st.seen.restart_while_forwarded
            }));
        }
        properties
    }
}

/// What a result says of an operation's effect.
pub(super) enum Answer {
    /// Its effect, as the sequential specification predicts it.
    Definite,
    /// An error: the operation may or may not have taken effect.
    Unknown,
    /// A result no such operation gives: the answer to another request.
    Mismatch,
}

pub(super) fn answers(op: &Op, result: &OpResult) -> Answer {
    use OpResult as R;
    match (op, result) {
        // A command's own error (INCR of a non-integer, an overflow, a
        // float that is not one, WRONGTYPE): the store or the cache
        // decided, nothing applied.
        (_, R::Err(ErrorKind::NotInteger | ErrorKind::Reply(_))) => Answer::Definite,
        (_, R::Err(_)) => Answer::Unknown,
        // A transaction: one answer per command, each of its command's kind.
        (Op::Atomic(ops), R::Many(rs)) if ops.len() == rs.len() => {
            match ops.iter().zip(rs).map(|(o, r)| answers(o, r)).find(|a| !matches!(a, Answer::Definite)) {
                None => Answer::Definite,
                Some(_) => Answer::Mismatch,
            }
        }
        // A guard failed: nothing applied.
        (Op::Atomic(_), R::Aborted) => Answer::Definite,
        (Op::Keys(KeysWrite::Move { copy: false, replace: true, .. }), R::Ok) => Answer::Definite,
        (Op::Keys(_), R::Int(_)) => Answer::Definite,
        (Op::Get(_), R::Value(_))
        | (Op::Guard(..), R::Ok)
        | (Op::Set(..), R::Ok)
        | (Op::SetWith(..), R::Ok | R::NotSet)
        | (Op::Del(_), R::Deleted(_))
        | (Op::Incr(..) | Op::Expire(..) | Op::Ttl(_), R::Int(_)) => Answer::Definite,
        (Op::Update(_, u), r) => match (u, r) {
            (Update::Set { get: true, .. } | Update::GetDel | Update::GetEx(_) | Update::IncrFloat(_), R::Value(_))
            | (Update::Set { get: false, .. }, R::Ok | R::NotSet)
            | (Update::Append(_) | Update::SetRange(..) | Update::Persist | Update::Expire(..), R::Int(_))
            | (Update::Hash(HashWrite::IncrByFloat(..)), R::Value(_)) => Answer::Definite,
            (Update::Hash(h), R::Int(_)) if !matches!(h, HashWrite::IncrByFloat(..)) => Answer::Definite,
            _ => Answer::Mismatch,
        },
        (Op::Db(DbRead::Scan { .. } | DbRead::InSlot { count_only: false, .. }), R::Keys { .. })
        | (Op::Db(DbRead::Size | DbRead::InSlot { count_only: true, .. }), R::Int(_)) => Answer::Definite,
        (Op::Inspect(_, what), r) => match (what, r) {
            (Inspect::GetRange(..), R::Value(_))
            | (Inspect::Type, R::Status(_))
            | (Inspect::Strlen | Inspect::ExpireTime { .. } | Inspect::Exists, R::Int(_))
            | (Inspect::Hash(HashRead::Get(_)), R::Value(_))
            | (Inspect::Hash(HashRead::MGet(_) | HashRead::Keys | HashRead::Vals), R::Values(_))
            | (Inspect::Hash(HashRead::GetAll | HashRead::Scan(_)), R::Pairs(_))
            | (Inspect::Hash(HashRead::Len | HashRead::Exists(_) | HashRead::StrLen(_)), R::Int(_)) => Answer::Definite,
            _ => Answer::Mismatch,
        },
        _ => Answer::Mismatch,
    }
}
