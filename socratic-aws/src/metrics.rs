//! CloudWatch embedded metrics from the pipeline's metric events: a tracing layer that writes
//! each event of [`METRICS_TARGET`] as one embedded-metric-format JSON line, which Lambda ships
//! to CloudWatch Logs and CloudWatch turns into metrics, with no API call and no permission.
//!
//! | event | dimensions | metrics |
//! |---|---|---|
//! | `model_call` | `Model`, `Role` | `Calls`, `InputTokens`, `OutputTokens`, `CostUsd`, `LatencyMs` |
//! | `run_finished` | `Status` | `RunsFinished` |
//! | `manifest_summarised` | none | `ManifestsSummarised`, `ManifestCostUsd` |

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Map, Value, json};
use socratic_core::pipeline::METRICS_TARGET;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};

/// The CloudWatch namespace of the pipeline's metrics.
pub const NAMESPACE: &str = "Socratic";

/// A tracing layer writing the pipeline's metric events as CloudWatch embedded metrics.
#[derive(Debug)]
pub struct EmbeddedMetrics<W> {
    writer: W,
}

impl<W> EmbeddedMetrics<W> {
    /// Writes to `writer` (stdout on Lambda).
    pub fn new(writer: W) -> Self {
        Self { writer }
    }
}

/// The fields of one event, as JSON.
#[derive(Default)]
struct Fields(BTreeMap<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
}

/// A metric's name, value and unit.
type Metric = (&'static str, Value, &'static str);

/// The embedded-metric document for an event's fields, or `None` for an event of no known
/// metric.
pub(crate) fn document(fields: &BTreeMap<String, Value>, timestamp_ms: u64) -> Option<Value> {
    let field = |name: &str| fields.get(name).cloned().unwrap_or(Value::Null);
    let (metrics, dimensions): (Vec<Metric>, Vec<(&str, Value)>) =
        match fields.get("metric")?.as_str()? {
            "model_call" => (
                vec![
                    ("Calls", Value::from(1), "Count"),
                    ("InputTokens", field("input_tokens"), "Count"),
                    ("OutputTokens", field("output_tokens"), "Count"),
                    ("CostUsd", field("cost_usd"), "None"),
                    ("LatencyMs", field("latency_ms"), "Milliseconds"),
                ],
                vec![("Model", field("model")), ("Role", field("role"))],
            ),
            "run_finished" => (
                vec![("RunsFinished", Value::from(1), "Count")],
                vec![("Status", field("status"))],
            ),
            "manifest_summarised" => (
                vec![
                    ("ManifestsSummarised", Value::from(1), "Count"),
                    ("ManifestCostUsd", field("cost_usd"), "None"),
                ],
                Vec::new(),
            ),
            _ => return None,
        };
    let mut document = Map::new();
    document.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        document.insert(name.to_owned(), value);
    }
    for (name, value, _) in metrics {
        document.insert(name.to_owned(), value);
    }
    Some(Value::Object(document))
}

impl<S, W> Layer<S> for EmbeddedMetrics<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != METRICS_TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if let Some(document) = document(&fields.0, now) {
            let mut writer = self.writer.make_writer();
            // A metric lost to a failed write is not worth failing the job for.
            let _ = writeln!(writer, "{document}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn metric_events_become_embedded_metric_lines_and_others_are_ignored() {
        let captured = Captured::default();
        let subscriber =
            tracing_subscriber::registry().with(EmbeddedMetrics::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: METRICS_TARGET,
                metric = "model_call",
                model = "claude-sonnet-4",
                role = "tutor",
                input_tokens = 1200_u64,
                output_tokens = 80_u64,
                cost_usd = 0.0048,
                latency_ms = 950_u64,
                cached = false,
            );
            tracing::info!(target: METRICS_TARGET, metric = "run_finished", status = "failed");
            tracing::info!(target: "socratic_core::runner", "not a metric");
            tracing::info!(target: METRICS_TARGET, metric = "something_else");
        });
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8(bytes).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let call = &lines[0];
        let spec = &call["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], NAMESPACE);
        assert_eq!(spec["Dimensions"], json!([["Model", "Role"]]));
        assert!(call["_aws"]["Timestamp"].as_u64().is_some_and(|t| t > 0));
        let names: Vec<&str> = spec["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Calls",
                "InputTokens",
                "OutputTokens",
                "CostUsd",
                "LatencyMs"
            ]
        );
        // Every metric and dimension named in the spec is a member of the document.
        for name in names.iter().chain(["Model", "Role"].iter()) {
            assert!(!call[name].is_null(), "{name} missing: {call}");
        }
        assert_eq!(call["Model"], "claude-sonnet-4");
        assert_eq!(call["InputTokens"], 1200);
        assert_eq!(call["CostUsd"], 0.0048);
        let run = &lines[1];
        assert_eq!(run["Status"], "failed");
        assert_eq!(run["RunsFinished"], 1);
    }
}
