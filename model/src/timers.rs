//! The one driver of the roles' named timers, on any clock: the model
//! checker's virtual ticks, the core's tests and the runtime's milliseconds
//! all keep a role's timers here. A role sets and cancels timers by name
//! through its outputs ([`TimerOutput`]); whoever drives it asks which are
//! due on its clock and feeds them back as inputs. Setting a timer again
//! moves it; a fired timer is gone until set again.

use crate::client::{ClientOutput, ClientTimer};
use crate::master::{MasterOutput, MasterTimer};
use crate::server::{ServerOutput, ServerTimer};
use crate::types::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

/// A role's pending timers: each named timer at most once, with its deadline.
#[derive(Clone, Debug)]
pub struct Timers<T: Ord + Copy> {
    at: BTreeMap<T, Time>,
    /// The same timers by deadline (then name).
    queue: BTreeSet<(Time, T)>,
}

impl<T: Ord + Copy> Default for Timers<T> {
    fn default() -> Timers<T> {
        Timers { at: BTreeMap::new(), queue: BTreeSet::new() }
    }
}

/// Two timer sets are equal when they hold the same timers at the same
/// deadlines (the queue follows from that).
impl<T: Ord + Copy> PartialEq for Timers<T> {
    fn eq(&self, other: &Timers<T>) -> bool {
        self.at == other.at
    }
}

impl<T: Ord + Copy> Eq for Timers<T> {}

impl<T: Ord + Copy + Hash> Hash for Timers<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.at.hash(state);
    }
}

impl<T: Ord + Copy> Timers<T> {
    pub fn new() -> Timers<T> {
        Timers::default()
    }

    pub fn set(&mut self, timer: T, at: Time) {
        if let Some(old) = self.at.insert(timer, at) {
            self.queue.remove(&(old, timer));
        }
        self.queue.insert((at, timer));
    }

    pub fn cancel(&mut self, timer: T) {
        if let Some(old) = self.at.remove(&timer) {
            self.queue.remove(&(old, timer));
        }
    }

    /// Forgets every timer (the role's process is gone).
    pub fn clear(&mut self) {
        self.at.clear();
        self.queue.clear();
    }

    /// Carries out `out` if it sets or cancels a timer; whether it did.
    pub fn carry_out<O: TimerOutput<T>>(&mut self, out: &O) -> bool {
        match out.timer_change() {
            Some(TimerChange::Set(timer, at)) => self.set(timer, at),
            Some(TimerChange::Cancel(timer)) => self.cancel(timer),
            None => return false,
        }
        true
    }

    /// The timer due first at `now` (earliest deadline, then name), removed.
    pub fn pop_due(&mut self, now: Time) -> Option<T> {
        let &(at, timer) = self.queue.first()?;
        if at > now {
            return None;
        }
        self.queue.pop_first();
        self.at.remove(&timer);
        Some(timer)
    }

    /// The timer with the earliest deadline and that deadline, removed,
    /// whatever the time: a driver of virtual time jumps to it.
    pub fn pop_next(&mut self) -> Option<(T, Time)> {
        let (at, timer) = self.queue.pop_first()?;
        self.at.remove(&timer);
        Some((timer, at))
    }

    /// Removes `timer` if it is due at `now`; whether it was.
    pub fn take_if_due(&mut self, timer: T, now: Time) -> bool {
        match self.at.get(&timer) {
            Some(at) if *at <= now => {
                self.cancel(timer);
                true
            }
            _ => false,
        }
    }

    /// The timers due at `now`, in name order, left in place.
    pub fn due(&self, now: Time) -> impl Iterator<Item = T> + '_ {
        self.at.iter().filter(move |(_, at)| **at <= now).map(|(t, _)| *t)
    }

    /// The earliest deadline, if any timer is set.
    pub fn next_deadline(&self) -> Option<Time> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// Time units from `now` until the earliest deadline (0 if one is due).
    pub fn wait(&self, now: Time) -> Option<u64> {
        self.next_deadline().map(|at| at.since(now))
    }

    /// Whether `timer` is set.
    pub fn is_set(&self, timer: T) -> bool {
        self.at.contains_key(&timer)
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Every timer with its deadline, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (T, Time)> + '_ {
        self.at.iter().map(|(t, at)| (*t, *at))
    }
}

/// What a role's output does to its timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerChange<T> {
    Set(T, Time),
    Cancel(T),
}

/// An output that may set or cancel one of the role's timers.
pub trait TimerOutput<T> {
    fn timer_change(&self) -> Option<TimerChange<T>>;
}

impl TimerOutput<ServerTimer> for ServerOutput {
    fn timer_change(&self) -> Option<TimerChange<ServerTimer>> {
        match self {
            ServerOutput::SetTimer { timer, at } => Some(TimerChange::Set(*timer, *at)),
            ServerOutput::CancelTimer(timer) => Some(TimerChange::Cancel(*timer)),
            _ => None,
        }
    }
}

impl TimerOutput<MasterTimer> for MasterOutput {
    fn timer_change(&self) -> Option<TimerChange<MasterTimer>> {
        match self {
            MasterOutput::SetTimer { timer, at } => Some(TimerChange::Set(*timer, *at)),
            MasterOutput::CancelTimer(timer) => Some(TimerChange::Cancel(*timer)),
            _ => None,
        }
    }
}

impl TimerOutput<ClientTimer> for ClientOutput {
    fn timer_change(&self) -> Option<TimerChange<ClientTimer>> {
        match self {
            ClientOutput::SetTimer { timer, at } => Some(TimerChange::Set(*timer, *at)),
            ClientOutput::CancelTimer(timer) => Some(TimerChange::Cancel(*timer)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_set_again_moves_and_fires_once() {
        let mut t: Timers<u8> = Timers::default();
        t.set(1, Time(5));
        t.set(2, Time(3));
        t.set(1, Time(2));
        assert_eq!(t.next_deadline(), Some(Time(2)));
        assert_eq!(t.due(Time(3)).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(t.pop_due(Time(3)), Some(1));
        assert_eq!(t.pop_due(Time(3)), Some(2));
        assert_eq!(t.pop_due(Time(9)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn outputs_set_and_cancel() {
        let mut t: Timers<ServerTimer> = Timers::default();
        assert!(t.carry_out(&ServerOutput::SetTimer { timer: ServerTimer::Retry, at: Time(4) }));
        assert!(t.is_set(ServerTimer::Retry));
        assert!(!t.take_if_due(ServerTimer::Retry, Time(3)));
        assert!(t.carry_out(&ServerOutput::CancelTimer(ServerTimer::Retry)));
        assert!(t.is_empty());
    }
}
