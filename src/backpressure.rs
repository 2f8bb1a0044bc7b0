//! The one backpressure policy of a run, chosen once from its input (docs/architecture.md,
//! "Backpressure"): live capture never waits on a full queue, it drops the item and the caller
//! counts it; replay waits, so an offline run loses nothing and takes as long as it takes.
//!
//! Every bounded queue between stages sends through [`Backpressure::send`]; no stage decides
//! for itself. It never counts: the metric that shows a drop belongs to the queue's owner.

use crossbeam_channel::{Sender, TrySendError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Replay: block until the receiver has room; nothing is lost.
    Wait,
    /// Live: never stall the producer; a full queue drops the item (the caller counts it).
    Drop,
}

impl Backpressure {
    /// Live input drops, files wait.
    pub fn for_input(live: bool) -> Self {
        if live {
            Backpressure::Drop
        } else {
            Backpressure::Wait
        }
    }

    pub fn waits(self) -> bool {
        self == Backpressure::Wait
    }

    /// Sends `item` under this policy. `Err(Full)` only under `Drop`; `Err(Disconnected)`
    /// when the receiver is gone (under either policy).
    pub fn send<T>(self, tx: &Sender<T>, item: T) -> Result<(), TrySendError<T>> {
        match self {
            Backpressure::Wait => tx.send(item).map_err(|e| TrySendError::Disconnected(e.0)),
            Backpressure::Drop => tx.try_send(item),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_drops_on_a_full_queue_and_replay_waits_for_room() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let live = Backpressure::for_input(true);
        assert!(live.send(&tx, 1).is_ok());
        assert!(matches!(live.send(&tx, 2), Err(TrySendError::Full(2))));
        let replay = Backpressure::for_input(false);
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            (rx.recv().unwrap(), rx.recv().unwrap())
        });
        assert!(
            replay.send(&tx, 3).is_ok(),
            "waits until the reader takes 1"
        );
        assert_eq!(reader.join().unwrap(), (1, 3));
        assert!(matches!(
            replay.send(&tx, 4),
            Err(TrySendError::Disconnected(4))
        ));
    }
}
