//! The work gate: at most N expensive steps (render and apply) at once, handed out by priority
//! instead of arrival, with fairness between groups (namespaces).
//!
//! A controller's own queue is first come, first served: under a burst of a thousand fresh
//! releases, a dependent woken by its dependency's Ready queues behind every fresh install, and
//! its environment waits seconds for nothing. So reconciles stay cheap and short: one that
//! needs the expensive step asks the gate ([`WorkGate::enter`]); with no slot free it is
//! queued here and ends. When a slot frees, the best waiter gets it, reserved under its key,
//! and its key comes out of [`WorkGate::take_turns`] (for `Controller::reconcile_on`): its next
//! reconcile enters with the reservation. Nothing waits inside a reconcile, so a controller's
//! bounded concurrency never fills up with waiting work.
//!
//! The best waiter: the highest [`Priority`]; among equals, the group with the fewest steps in
//! flight (one big environment cannot starve the others), then the earliest arrival. A
//! reservation not claimed within [`RESERVATION_TIMEOUT`] (its object was deleted, or no longer
//! needs the step) goes to the next waiter.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::channel::mpsc;

/// How long a slot stays reserved for a waiter whose turn came.
pub const RESERVATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How urgent a waiting step is; higher goes first. Compared field by field, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority {
    /// How far along its dependency chain the step is (1: no dependencies). A dependent whose
    /// dependencies just became Ready continues a chain that someone already waited for, so
    /// it goes before fresh work: hand-offs stay short under a burst.
    pub depth: u32,
    /// The longest chain of dependents still waiting behind it (1: nobody waits for it), so a
    /// release on the critical path goes before a leaf.
    pub remaining: u32,
}

/// Hands out at most `slots` permits at once, by priority (see the module documentation).
pub struct WorkGate<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for WorkGate<K> {
    fn clone(&self) -> Self {
        WorkGate {
            shared: self.shared.clone(),
        }
    }
}

/// The right to run one expensive step; its slot goes to the next waiter when dropped.
#[must_use = "the step holds its slot only while the permit lives"]
pub struct GatePermit<K: Eq + Hash + Clone> {
    shared: Arc<Shared<K>>,
    group: String,
}

impl<K: Eq + Hash + Clone> Drop for GatePermit<K> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.finish(&self.group);
        state.dispatch(Instant::now());
    }
}

struct Shared<K> {
    state: Mutex<State<K>>,
}

struct State<K> {
    free: usize,
    next_arrival: u64,
    in_flight: HashMap<String, usize>,
    waiting: HashMap<K, Waiter>,
    reserved: HashMap<K, Reservation>,
    turns: mpsc::UnboundedSender<K>,
    turns_receiver: Option<mpsc::UnboundedReceiver<K>>,
}

struct Waiter {
    priority: Priority,
    group: String,
    arrival: u64,
}

struct Reservation {
    group: String,
    at: Instant,
}

impl<K: Eq + Hash + Clone> WorkGate<K> {
    /// A gate of `slots` permits (at least one).
    pub fn new(slots: usize) -> Self {
        let (turns, receiver) = mpsc::unbounded();
        WorkGate {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    free: slots.max(1),
                    next_arrival: 0,
                    in_flight: HashMap::new(),
                    waiting: HashMap::new(),
                    reserved: HashMap::new(),
                    turns,
                    turns_receiver: Some(receiver),
                }),
            }),
        }
    }

    /// The keys whose turn came, in order; `None` after the first call.
    pub fn take_turns(&self) -> Option<mpsc::UnboundedReceiver<K>> {
        self.shared.lock().turns_receiver.take()
    }

    /// A permit for `key`'s step when its reservation is there or a slot is free; else `key`
    /// waits (or keeps its place, at its new priority) and its turn comes later.
    pub fn enter(&self, key: &K, group: &str, priority: Priority) -> Option<GatePermit<K>> {
        let mut state = self.shared.lock();
        state.expire(Instant::now());
        if let Some(reservation) = state.reserved.remove(key) {
            state.waiting.remove(key);
            return Some(self.permit(reservation.group));
        }
        if let Some(permit) = self.take_free(&mut state, group) {
            return Some(permit);
        }
        let arrival = match state.waiting.get(key) {
            Some(waiter) => waiter.arrival,
            None => {
                state.next_arrival += 1;
                state.next_arrival
            }
        };
        state.waiting.insert(
            key.clone(),
            Waiter {
                priority,
                group: group.to_owned(),
                arrival,
            },
        );
        None
    }

    /// A permit only when a slot is free and nobody waits: for work done ahead of need.
    pub fn enter_if_idle(&self, group: &str) -> Option<GatePermit<K>> {
        let mut state = self.shared.lock();
        self.take_free(&mut state, group)
    }

    /// `key` no longer needs the step: its place in the queue or its reserved slot is given up.
    pub fn leave(&self, key: &K) {
        let mut state = self.shared.lock();
        state.waiting.remove(key);
        if let Some(reservation) = state.reserved.remove(key) {
            state.finish(&reservation.group);
            state.dispatch(Instant::now());
        }
    }

    /// Steps waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiting.len()
    }

    /// A free slot, unless there is none or someone waits for one.
    fn take_free(&self, state: &mut State<K>, group: &str) -> Option<GatePermit<K>> {
        if state.free == 0 || !state.waiting.is_empty() {
            return None;
        }
        state.free -= 1;
        *state.in_flight.entry(group.to_owned()).or_default() += 1;
        Some(self.permit(group.to_owned()))
    }

    fn permit(&self, group: String) -> GatePermit<K> {
        GatePermit {
            shared: self.shared.clone(),
            group,
        }
    }
}

impl<K> Shared<K> {
    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // Counts left by a panic while holding this lock are still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Eq + Hash + Clone> State<K> {
    /// A slot of `group` is free again.
    fn finish(&mut self, group: &str) {
        self.free += 1;
        if let Some(count) = self.in_flight.get_mut(group) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(group);
            }
        }
    }

    /// Frees the slots of reservations nobody claimed in time.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<K> = self
            .reserved
            .iter()
            .filter(|(_, r)| now.duration_since(r.at) >= RESERVATION_TIMEOUT)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            if let Some(reservation) = self.reserved.remove(&key) {
                self.finish(&reservation.group);
            }
        }
        self.dispatch(now);
    }

    /// Reserves free slots for the best waiters and announces their turn.
    fn dispatch(&mut self, now: Instant) {
        while self.free > 0 {
            let Some(best) = self.best_waiter() else {
                return;
            };
            let Some(waiter) = self.waiting.remove(&best) else {
                return;
            };
            self.free -= 1;
            *self.in_flight.entry(waiter.group.clone()).or_default() += 1;
            self.reserved.insert(
                best.clone(),
                Reservation {
                    group: waiter.group,
                    at: now,
                },
            );
            // Nobody listening (the controller stopped): the reservation expires.
            let _ = self.turns.unbounded_send(best);
        }
    }

    fn best_waiter(&self) -> Option<K> {
        let in_flight = |group: &str| self.in_flight.get(group).copied().unwrap_or(0);
        self.waiting
            .iter()
            .min_by(|(_, a), (_, b)| {
                b.priority
                    .cmp(&a.priority)
                    .then_with(|| in_flight(&a.group).cmp(&in_flight(&b.group)))
                    .then_with(|| a.arrival.cmp(&b.arrival))
            })
            .map(|(key, _)| key.clone())
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn at(depth: u32, remaining: u32) -> Priority {
        Priority { depth, remaining }
    }

    /// The keys whose turn has come so far.
    fn turns(receiver: &mut mpsc::UnboundedReceiver<&'static str>) -> Vec<&'static str> {
        let mut seen = Vec::new();
        while let Ok(key) = receiver.try_recv() {
            seen.push(key);
        }
        seen
    }

    #[test]
    fn free_slots_are_taken_at_once() {
        let gate = WorkGate::new(2);
        let _a = gate.enter(&"a", "ns", at(1, 1)).unwrap();
        let _b = gate.enter(&"b", "ns", at(1, 1)).unwrap();
        assert!(gate.enter(&"c", "ns", at(1, 1)).is_none());
        assert_eq!(gate.waiting(), 1);
    }

    #[test]
    fn a_freed_slot_is_reserved_for_the_waiter_whose_turn_it_announces() {
        let gate = WorkGate::new(1);
        let mut announced = gate.take_turns().unwrap();
        let held = gate.enter(&"a", "ns", at(1, 1)).unwrap();
        assert!(gate.enter(&"b", "ns", at(1, 1)).is_none());
        drop(held);
        assert_eq!(turns(&mut announced), ["b"]);
        // The slot is b's: someone else arriving now waits.
        assert!(gate.enter(&"c", "ns", at(9, 9)).is_none());
        assert!(gate.enter(&"b", "ns", at(1, 1)).is_some());
    }

    #[test]
    fn a_dependent_continuing_its_chain_goes_before_fresh_work() {
        let gate = WorkGate::new(1);
        let mut announced = gate.take_turns().unwrap();
        let held = gate.enter(&"running", "a", at(1, 1)).unwrap();
        assert!(gate.enter(&"fresh root", "b", at(1, 3)).is_none());
        assert!(gate.enter(&"dependent", "c", at(2, 1)).is_none());
        drop(held);
        let first = gate.enter(&"dependent", "c", at(2, 1)).unwrap();
        drop(first);
        assert_eq!(turns(&mut announced), ["dependent", "fresh root"]);
    }

    #[test]
    fn a_release_others_wait_for_goes_before_a_leaf() {
        let gate = WorkGate::new(1);
        let mut announced = gate.take_turns().unwrap();
        let held = gate.enter(&"running", "a", at(1, 1)).unwrap();
        assert!(gate.enter(&"leaf", "a", at(1, 1)).is_none());
        assert!(gate.enter(&"head of a chain", "a", at(1, 3)).is_none());
        drop(held);
        assert_eq!(turns(&mut announced), ["head of a chain"]);
    }

    #[test]
    fn among_equals_the_namespace_with_less_in_flight_goes_first() {
        let gate = WorkGate::new(2);
        let mut announced = gate.take_turns().unwrap();
        let _busy = gate.enter(&"big-1", "big", at(1, 1)).unwrap();
        let other = gate.enter(&"small-1", "small", at(1, 1)).unwrap();
        assert!(gate.enter(&"big-2", "big", at(1, 1)).is_none());
        assert!(gate.enter(&"small-2", "small", at(1, 1)).is_none());
        // "big" still holds a slot, "small" none once its step ends: the freed slot goes to
        // "small", though "big" asked first.
        drop(other);
        assert_eq!(turns(&mut announced), ["small-2"]);
    }

    #[test]
    fn equal_waiters_are_served_in_arrival_order_and_keep_their_place_when_asking_again() {
        let gate = WorkGate::new(1);
        let mut announced = gate.take_turns().unwrap();
        let held = gate.enter(&"running", "a", at(1, 1)).unwrap();
        assert!(gate.enter(&"first", "b", at(1, 1)).is_none());
        assert!(gate.enter(&"second", "b", at(1, 1)).is_none());
        assert!(gate.enter(&"first", "b", at(1, 1)).is_none());
        drop(held);
        assert_eq!(turns(&mut announced), ["first"]);
    }

    #[test]
    fn work_ahead_of_need_only_takes_an_idle_slot() {
        let gate = WorkGate::new(2);
        let held = gate.enter(&"running", "a", at(1, 1)).unwrap();
        let ahead = gate.enter_if_idle("a").unwrap();
        drop(ahead);
        let _other = gate.enter(&"other", "a", at(1, 1)).unwrap();
        assert!(gate.enter_if_idle("a").is_none());
        assert!(gate.enter(&"queued", "a", at(1, 1)).is_none());
        drop(held);
        // The freed slot is reserved for the waiter, not idle.
        assert!(gate.enter_if_idle("a").is_none());
    }

    #[test]
    fn a_waiter_that_leaves_gives_up_its_place_and_its_reservation() {
        let gate = WorkGate::new(1);
        let mut announced = gate.take_turns().unwrap();
        let held = gate.enter(&"running", "a", at(1, 1)).unwrap();
        assert!(gate.enter(&"gone", "a", at(3, 3)).is_none());
        assert!(gate.enter(&"patient", "a", at(1, 1)).is_none());
        assert!(gate.enter(&"later", "a", at(1, 1)).is_none());
        gate.leave(&"gone");
        drop(held);
        assert_eq!(turns(&mut announced), ["patient"]);
        gate.leave(&"patient");
        assert_eq!(turns(&mut announced), ["later"]);
        assert_eq!(gate.waiting(), 0);
    }

    #[tokio::test]
    async fn turns_arrive_as_a_stream() {
        let gate = WorkGate::new(1);
        let mut announced = gate.take_turns().unwrap();
        assert!(gate.take_turns().is_none());
        let held = gate.enter(&"running", "a", at(1, 1)).unwrap();
        assert!(gate.enter(&"next", "a", at(1, 1)).is_none());
        drop(held);
        assert_eq!(announced.next().await, Some("next"));
    }
}
