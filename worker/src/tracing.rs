//! A [`tracing`] layer that sends events to the master as `log` frames.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! let worker = distarch_worker::Worker::from_env()?;
//! let subscriber = tracing_subscriber::registry().with(worker.tracing_layer());
//! tracing::subscriber::set_global_default(subscriber).ok();
//! tracing::info!(rows = 12, "imported");
//! # Ok::<(), distarch_worker::WorkerError>(())
//! ```

use crate::worker::Worker;
use ::tracing::field::{Field, Visit};
use ::tracing::{Event, Subscriber};
use distarch_protocol::Level;
use serde_json::{Map, Value};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// A layer that turns each event into a `log` frame: the level maps one to one,
/// the `message` field becomes the message and the other fields go into `fields`.
/// Spans are not recorded. Compose it with a filter layer to drop verbose events.
#[derive(Debug, Clone)]
pub struct WorkerLayer {
    worker: Worker,
}

/// A [`WorkerLayer`] that logs through `worker`.
pub fn layer(worker: &Worker) -> WorkerLayer {
    WorkerLayer {
        worker: worker.clone(),
    }
}

impl Worker {
    /// A [`WorkerLayer`] that logs through this worker.
    pub fn tracing_layer(&self) -> WorkerLayer {
        layer(self)
    }
}

impl<S: Subscriber> Layer<S> for WorkerLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let level = map_level(*event.metadata().level());
        let fields = (!visitor.fields.is_empty()).then_some(visitor.fields);
        self.worker.log(level, visitor.message, fields);
    }
}

fn map_level(level: ::tracing::Level) -> Level {
    match level {
        ::tracing::Level::TRACE => Level::Trace,
        ::tracing::Level::DEBUG => Level::Debug,
        ::tracing::Level::INFO => Level::Info,
        ::tracing::Level::WARN => Level::Warn,
        ::tracing::Level::ERROR => Level::Error,
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: Map<String, Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for FieldVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.put(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, crate::error::Chain(value).to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::identity::tests::vars;
    use crate::output::tests::SharedBuf;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_become_log_frames() {
        let vars = vars();
        let buf = SharedBuf::default();
        let worker = Worker::from_vars(|n| vars.get(n).cloned())
            .unwrap()
            .with_output(buf.clone())
            .with_master_gone_exit(None);
        let subscriber = tracing_subscriber::registry().with(worker.tracing_layer());
        ::tracing::subscriber::with_default(subscriber, || {
            ::tracing::warn!(rows = 12, file = "a.csv", ok = true, "imported {}", "all");
            ::tracing::debug!("plain");
        });
        let frames: Vec<Value> = buf
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l.trim_start_matches('\u{1e}')).unwrap())
            .collect();
        assert_eq!(frames[0]["type"], "hello");
        assert_eq!(
            frames[1..],
            vec![
                serde_json::json!({"type": "log", "level": "warn", "message": "imported all",
                    "fields": {"rows": 12, "file": "a.csv", "ok": true}}),
                serde_json::json!({"type": "log", "level": "debug", "message": "plain"}),
            ]
        );
    }
}
