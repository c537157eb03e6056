//! The launcher's orders to every instance task, broadcast on a watch channel. Orders
//! only ever escalate: run → stop → terminate → kill.

use crate::events::{StopReason, StopStep};
use std::sync::Arc;
use tokio::sync::watch;

/// What instances should be doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Order {
    /// Keep running (and restarting per policy).
    Run,
    /// Stop politely: `stop` frame, then escalate on timers.
    Stop,
    /// Skip the `stop` frame: terminate, then kill after `kill_after`.
    Terminate,
    /// Kill now.
    Kill,
}

impl Order {
    /// The first escalation step this order calls for (`None` for `Run`).
    pub(crate) fn first_step(self) -> Option<StopStep> {
        match self {
            Order::Run => None,
            Order::Stop => Some(StopStep::StopFrame),
            Order::Terminate => Some(StopStep::Terminate),
            Order::Kill => Some(StopStep::Kill),
        }
    }
}

/// The current order and why it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ControlState {
    pub(crate) order: Order,
    pub(crate) reason: Option<StopReason>,
}

/// Lets a library user (or a signal handler) stop a running launcher.
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: Arc<watch::Sender<ControlState>>,
}

impl StopHandle {
    pub(crate) fn new() -> (Self, watch::Receiver<ControlState>) {
        let (tx, rx) = watch::channel(ControlState {
            order: Order::Run,
            reason: None,
        });
        (StopHandle { tx: Arc::new(tx) }, rx)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ControlState> {
        self.tx.subscribe()
    }

    /// Escalates to `order` (never de-escalates). Returns true when it changed.
    pub(crate) fn escalate(&self, order: Order, reason: StopReason) -> bool {
        self.tx.send_if_modified(|state| {
            if order > state.order {
                state.order = order;
                if state.reason.is_none() {
                    state.reason = Some(reason);
                }
                true
            } else {
                false
            }
        })
    }

    /// Stops every instance cleanly (`stop` frame, grace, terminate, kill).
    pub fn stop(&self) {
        self.escalate(Order::Stop, StopReason::Requested);
    }

    /// Stops every instance cleanly, giving `reason` as the run's stop reason
    /// (unless it is stopping already for another one).
    pub fn stop_for(&self, reason: StopReason) {
        self.escalate(Order::Stop, reason);
    }

    /// Kills every instance now.
    pub fn kill(&self) {
        self.escalate(Order::Kill, StopReason::Requested);
    }

    pub(crate) fn state(&self) -> ControlState {
        *self.tx.borrow()
    }
}

/// Waits until the order is at least `min`; returns the order then. Never returns
/// if the sender is gone (which only happens once the run is over).
pub(crate) async fn order_at_least(rx: &mut watch::Receiver<ControlState>, min: Order) -> Order {
    loop {
        let order = rx.borrow_and_update().order;
        if order >= min {
            return order;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
