//! Start errors said once: when many instances of one group and host fail to start
//! for the same reason (an engine or host that cannot be reached), the text output
//! gives the reason with the first and names that first instance for the others.

use crate::events::Event;
use std::collections::HashMap;
use std::sync::Arc;

/// The last start error of each (group, host), with the instance that had it first.
#[derive(Debug, Default)]
pub(crate) struct StartErrors {
    last: HashMap<(Arc<str>, Arc<str>), (String, u64)>,
}

impl StartErrors {
    /// What to print instead of `event`, if anything: a start error already
    /// printed for the same group and host becomes "the same error as instance N".
    /// A start that worked forgets the error of its group and host.
    pub(crate) fn shorten(&mut self, event: &Event) -> Option<Event> {
        match event {
            Event::InstanceFailedToStart { instance, error } => {
                let key = (instance.group.clone(), instance.host.clone());
                match self.last.get(&key) {
                    Some((same, first)) if same == error && *first != instance.id => {
                        Some(Event::InstanceFailedToStart {
                            error: format!("the same error as instance {first}"),
                            instance: instance.clone(),
                        })
                    }
                    _ => {
                        self.last.insert(key, (error.clone(), instance.id));
                        None
                    }
                }
            }
            Event::InstanceStarted { instance, .. } => {
                self.last
                    .remove(&(instance.group.clone(), instance.host.clone()));
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::InstanceLabel;

    fn failed(id: u64, host: &str, error: &str) -> Event {
        Event::InstanceFailedToStart {
            instance: Arc::new(InstanceLabel::new("g".into(), host.into(), id, id, 4, 0)),
            error: error.into(),
        }
    }

    /// The error text printed for `event`.
    fn printed(r: &mut StartErrors, event: Event) -> String {
        let shown = r.shorten(&event).unwrap_or(event);
        match shown {
            Event::InstanceFailedToStart { error, .. } => error,
            _ => String::new(),
        }
    }

    #[test]
    fn a_repeated_start_error_names_the_first_instance_that_had_it() {
        let mut r = StartErrors::default();
        assert_eq!(printed(&mut r, failed(1, "h", "refused")), "refused");
        assert_eq!(
            printed(&mut r, failed(2, "h", "refused")),
            "the same error as instance 1"
        );
        // Another host, or another reason: said in full.
        assert_eq!(printed(&mut r, failed(3, "k", "refused")), "refused");
        assert_eq!(printed(&mut r, failed(4, "h", "timed out")), "timed out");
        // The same instance failing again on a restart: in full.
        assert_eq!(printed(&mut r, failed(4, "h", "timed out")), "timed out");
        // After a start that worked, the next failure is said in full again.
        let started = Event::InstanceStarted {
            instance: Arc::new(InstanceLabel::new("g".into(), "h".into(), 1, 1, 4, 0)),
            description: "pid 1".into(),
        };
        r.shorten(&started);
        assert_eq!(printed(&mut r, failed(2, "h", "timed out")), "timed out");
    }
}
