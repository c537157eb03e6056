//! distarch's own `tracing` records (the transports', the core's) as events of the
//! run, so that they take the one output path: filtered by level, labelled
//! `[group] [host] [id/group_id]` when they concern an instance, written as JSON
//! in JSON mode, counted in the metrics.
//!
//! [`tracing_layer`] gives a [`tracing_subscriber::Layer`] and the [`MasterLog`]
//! that receives its records; the layer goes into the process's subscriber, the
//! receiver into [`crate::LauncherBuilder::master_log`] (or, outside a run, into a
//! writer of its own, see [`MasterLog::try_next`]). Each instance task runs in a
//! span made by [`instance_span`]: a record inside it carries the instance's label.

use crate::events::{Event, InstanceLabel, LogRecord};
use distarch_protocol::Level;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Name of the span each instance task runs in.
const INSTANCE_SPAN: &str = "distarch_instance";

/// Only records of distarch's own crates are taken (not those of russh, hyper...).
const TARGET_PREFIX: &str = "distarch";

/// The span an instance task runs in; records inside it are labelled with it.
pub(crate) fn instance_span(
    group: &str,
    host: &str,
    id: u64,
    group_id: u64,
    group_count: u64,
) -> tracing::Span {
    tracing::info_span!(
        target: "distarch_core::instance",
        "distarch_instance",
        group,
        host,
        id,
        group_id,
        group_count
    )
}

/// Creates the layer and the receiving end of its records.
pub fn tracing_layer() -> (EventLayer, MasterLog) {
    let (tx, rx) = mpsc::unbounded_channel();
    (EventLayer { tx }, MasterLog { rx })
}

/// The receiving end of [`EventLayer`]'s records, as [`Event::Log`] events of the
/// master (instance-labelled where a span says so).
#[derive(Debug)]
pub struct MasterLog {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl MasterLog {
    /// The next record, waiting for it; `None` once the layer is gone.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next record if one is waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

/// A [`Layer`] that turns distarch's `tracing` records into [`Event::Log`] events.
#[derive(Debug, Clone)]
pub struct EventLayer {
    tx: mpsc::UnboundedSender<Event>,
}

/// The label stored in an instance span's extensions.
struct SpanLabel(Arc<InstanceLabel>);

/// Collects a record's message and fields.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.put(field, Value::String(text));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
}

impl Fields {
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

    fn str(&self, key: &str) -> &str {
        self.fields.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn u64(&self, key: &str) -> u64 {
        self.fields.get(key).and_then(Value::as_u64).unwrap_or(0)
    }
}

fn level_of(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::TRACE => Level::Trace,
        tracing::Level::DEBUG => Level::Debug,
        tracing::Level::INFO => Level::Info,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::ERROR => Level::Error,
    }
}

impl<S> Layer<S> for EventLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        metadata.target().starts_with(TARGET_PREFIX)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != INSTANCE_SPAN {
            return;
        }
        let mut f = Fields::default();
        attrs.record(&mut f);
        let label = InstanceLabel::new(
            Arc::from(f.str("group")),
            Arc::from(f.str("host")),
            f.u64("id"),
            f.u64("group_id"),
            f.u64("group_count"),
            0,
        );
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanLabel(Arc::new(label)));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let instance = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<SpanLabel>().map(|l| l.0.clone()))
        });
        let mut fields = f.fields;
        if instance.is_some() {
            // Shown like the master's other lines about an instance.
            fields.insert("source".into(), Value::String("master".into()));
        }
        let record = LogRecord {
            time: SystemTime::now(),
            instance,
            level: level_of(event.metadata().level()),
            message: f.message,
            fields: (!fields.is_empty()).then_some(fields),
            stream: None,
            truncated: false,
        };
        let _ = self.tx.send(Event::Log(record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn record(event: Event) -> LogRecord {
        match event {
            Event::Log(r) => r,
            other => panic!("not a log record: {other:?}"),
        }
    }

    #[test]
    fn records_become_events_labelled_inside_an_instance_span() {
        let (layer, mut log) = tracing_layer();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(host = "h1", "outside");
            let span = instance_span("web", "h1", 7, 2, 3);
            let _in = span.enter();
            tracing::warn!(pod = "p", "inside");
            // Other crates' records are not taken.
            tracing::error!(target: "russh::client", "noise");
        });
        let outside = record(log.try_next().expect("outside"));
        assert_eq!(outside.message, "outside");
        assert_eq!(outside.level, Level::Info);
        assert!(outside.instance.is_none());
        assert_eq!(
            outside.fields.as_ref().map(|f| f["host"].clone()),
            Some("h1".into())
        );
        let inside = record(log.try_next().expect("inside"));
        let label = inside.instance.expect("labelled");
        assert_eq!(label.text_prefix(), "[web] [h1] [7/2] ");
        assert_eq!(inside.level, Level::Warn);
        let mut text = Vec::new();
        crate::output::format_text(
            &mut text,
            &Event::Log(LogRecord {
                instance: Some(label),
                ..inside
            }),
        );
        assert_eq!(
            String::from_utf8(text).unwrap_or_default(),
            "[web] [h1] [7/2] WARN distarch: inside pod=\"p\"\n"
        );
        assert!(log.try_next().is_none());
    }
}
