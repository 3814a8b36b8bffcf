//! Fair turns at writing. SQLite lets one writer in at a time and makes the
//! others poll until their busy timeout: under sustained load a part that
//! writes back to back (the alert engine, a round of meters after another)
//! can keep winning the lock while a waiting part — a resident's reply, the
//! notifier recording a sent text, the store writer — polls past its timeout
//! and fails. Inside one process every write transaction therefore first
//! takes a turn here, in the order they asked; SQLite's own lock and timeout
//! still guard against other processes (the command line).

use std::sync::{Arc, Condvar, Mutex};

/// A ticket lock: turns are served in the order they were asked for.
#[derive(Debug, Default)]
pub struct WriteGate {
    turns: Mutex<Turns>,
    next_up: Condvar,
}

#[derive(Debug, Default)]
struct Turns {
    issued: u64,
    serving: u64,
}

/// The right to write, until dropped.
#[derive(Debug)]
pub struct Turn {
    gate: Arc<WriteGate>,
}

impl WriteGate {
    /// Waits for this caller's turn.
    pub fn enter(gate: &Arc<WriteGate>) -> Turn {
        let mut turns = gate.turns.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = turns.issued;
        turns.issued += 1;
        while turns.serving != ticket {
            turns = gate.next_up.wait(turns).unwrap_or_else(|e| e.into_inner());
        }
        Turn { gate: gate.clone() }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turns = self.gate.turns.lock().unwrap_or_else(|e| e.into_inner());
        turns.serving += 1;
        self.gate.next_up.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_served_in_the_order_asked_for() {
        let gate = Arc::new(WriteGate::default());
        let first = WriteGate::enter(&gate);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for n in 0..4 {
            let (asking, order) = (gate.clone(), order.clone());
            // Each asks only once the one before is queued.
            let issued = gate.turns.lock().unwrap().issued;
            waiting.push(std::thread::spawn(move || {
                let _turn = WriteGate::enter(&asking);
                order.lock().unwrap().push(n);
            }));
            while gate.turns.lock().unwrap().issued == issued {
                std::thread::yield_now();
            }
        }
        drop(first);
        for thread in waiting {
            thread.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    }
}
