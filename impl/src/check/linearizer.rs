//! Linearizability by keeping every way a history can be linearized, not
//! the history: the checker's and the fault suite's one checker.

use super::spec::KvSpec;
use failgroup_model::{Op, OpResult};
use stateright::semantics::SequentialSpec;
use std::collections::{BTreeMap, BTreeSet};

/// One way the history so far can be linearized: the key's state after
/// the operations placed, and each pending operation (by the thread that
/// invoked it) with its predicted answer if it is placed already.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Way {
    state: KvSpec,
    pending: BTreeMap<u16, (Op, Option<OpResult>)>,
}

/// A linearizability checker that keeps, instead of the history, every
/// way the history so far can be linearized ("just-in-time"
/// linearization): an operation may take effect at any moment between
/// its invocation and its return, so after each event the set is closed
/// under placing any pending operation; a return keeps the ways in which
/// that operation was placed with an answer the observed one matches. The
/// history is linearizable while some way remains. Two histories that
/// allow the same ways are one state to the model checker, where a tester
/// that keeps the history would count one state per interleaving.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Linearizer {
    ways: BTreeSet<Way>,
    /// The store's clock as last told ([`Linearizer::tick`]): keys whose
    /// absolute deadline it has reached are gone.
    now: u64,
}

impl Default for Linearizer {
    fn default() -> Linearizer {
        let start = Way { state: KvSpec::default(), pending: BTreeMap::new() };
        Linearizer { ways: BTreeSet::from([start]), now: 0 }
    }
}

impl Linearizer {
    pub fn is_linearizable(&self) -> bool {
        !self.ways.is_empty()
    }

    /// Operation `op` invoked by `thread` (one pending operation per thread).
    pub fn invoke(&mut self, thread: u16, op: Op) {
        let ways = std::mem::take(&mut self.ways);
        self.ways = ways
            .into_iter()
            .map(|mut w| {
                w.pending.insert(thread, (op.clone(), None));
                w
            })
            .collect();
        self.close();
    }

    /// `thread`'s pending operation returned `observed`.
    pub fn ret(&mut self, thread: u16, observed: &OpResult) {
        let ways = std::mem::take(&mut self.ways);
        self.ways = ways
            .into_iter()
            .filter_map(|mut w| match w.pending.remove(&thread) {
                Some((op, Some(predicted))) if KvSpec::allows(&op, &predicted, observed) => Some(w),
                _ => None,
            })
            .collect();
    }

    /// `thread`'s pending operation will never return (its connection was
    /// lost): it may have taken effect, or may still. Where it is placed
    /// already its answer is never observed, so it leaves those ways.
    /// A read has no effect: it leaves every way.
    pub fn abandon(&mut self, thread: u16) {
        self.drop_pending(thread, |(op, placed)| placed.is_some() || !op.is_write());
    }

    /// An abandoned operation of `thread` that has not taken effect by now
    /// never will (the cluster answers or drops every request within its
    /// request timeout): it leaves every way, unplaced.
    pub fn forget(&mut self, thread: u16) {
        self.drop_pending(thread, |_| true);
    }

    /// Removes `thread`'s pending operation from the ways where `which`
    /// holds of it (ways that become equal merge).
    fn drop_pending(&mut self, thread: u16, which: impl Fn(&(Op, Option<OpResult>)) -> bool) {
        let ways = std::mem::take(&mut self.ways);
        self.ways = ways
            .into_iter()
            .map(|mut w| {
                if w.pending.get(&thread).is_some_and(&which) {
                    w.pending.remove(&thread);
                }
                w
            })
            .collect();
    }

    /// The store's clock reads `now` (it only moves forward): in every way,
    /// keys whose deadline has come lapse at this instant, between the
    /// operations placed before it and those placed after.
    pub fn tick(&mut self, now: u64) {
        if now <= self.now {
            return;
        }
        self.now = now;
        let ways = std::mem::take(&mut self.ways);
        self.ways = ways
            .into_iter()
            .map(|mut w| {
                w.state.lapse(now);
                w
            })
            .collect();
        self.close();
    }

    /// How many ways the history so far can be linearized (the checker's
    /// work per event).
    pub fn ways(&self) -> usize {
        self.ways.len()
    }

    /// Adds every way reached by placing pending operations, in any order.
    fn close(&mut self) {
        let mut todo: Vec<Way> = self.ways.iter().cloned().collect();
        while let Some(w) = todo.pop() {
            for (t, (op, placed)) in &w.pending {
                if placed.is_some() {
                    continue;
                }
                let mut next = w.clone();
                let predicted = next.state.invoke(op);
                // A deadline set already past: the key is gone at once.
                next.state.lapse(self.now);
                next.pending.insert(*t, (op.clone(), Some(predicted)));
                if self.ways.insert(next.clone()) {
                    todo.push(next);
                }
            }
        }
    }
}
