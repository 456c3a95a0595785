//! The log subscriber, and OpenTelemetry traces of a turn (webhook → enqueue → turn → model rounds → skill calls →
//! reply), exported over OTLP/HTTP with JSON bodies when `[telemetry] otlp_endpoint` is set.
//!
//! The spans are ordinary `tracing` spans (debug level, so the log shows none of them);
//! `tracing-opentelemetry` turns them into OpenTelemetry spans and the SDK batches them. The
//! exporter here posts each batch with molten's own HTTP client instead of pulling in a second
//! HTTP and gRPC stack. The trace context travels inside the queued message (W3C
//! `traceparent`), so an ingress replica and the worker replica that answers join one trace.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;
use serde_json::{json, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP (off unless `otlp_endpoint` is set).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `http://localhost:4318/` (traces are posted to
    /// `v1/traces` under it).
    pub otlp_endpoint: Option<reqwest::Url>,
    /// `service.name` of every span.
    pub service_name: String,
    /// How long spans wait to be sent in one batch.
    pub export_delay: Duration,
}

/// How long one export may take before it is given up (the batch is dropped, not retried).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs the process's log: lines on stderr (`json` objects or text, colour only on a
/// terminal, never in a log file) filtered by `RUST_LOG` (else `default`); and with `traces`,
/// molten's spans (and its warnings and errors as span events) handed to OpenTelemetry.
pub fn install(json: bool, default: &str, traces: Option<&SdkTracerProvider>) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = if json {
        lines.json().boxed()
    } else {
        lines.with_ansi(std::io::stderr().is_terminal()).boxed()
    };
    let spans = traces.map(|provider| {
        layer(provider).with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target().starts_with("molten")
                && (meta.is_span() || *meta.level() <= tracing::Level::WARN)
        }))
    });
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .init();
}

/// The W3C `traceparent` of the current span, to carry in a queued message; none when traces
/// are not exported.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span that queued the message (its `traceparent`).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    // Fails only when the span is disabled (traces not exported): nothing to join then.
    let _ = span.set_parent(parent);
}

/// The tracer provider exporting to `config.otlp_endpoint` (none when unset). Must be called
/// inside the tokio runtime: exports run on it. Shut it down to flush the last spans.
pub fn provider(config: &TelemetryConfig, http: reqwest::Client) -> Option<SdkTracerProvider> {
    let endpoint = config.otlp_endpoint.as_ref()?;
    let exporter = OtlpJson {
        url: endpoint
            .join("v1/traces")
            .unwrap_or_else(|_| endpoint.clone()),
        http,
        runtime: tokio::runtime::Handle::current(),
        resource: Vec::new(),
    };
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(config.export_delay)
                .build(),
        )
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build(),
    )
}

/// The `tracing` layer that hands molten's spans to `provider`.
fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("molten"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
}

/// Posts span batches as OTLP/HTTP JSON (`POST <endpoint>/v1/traces`).
#[derive(Debug)]
struct OtlpJson {
    url: reqwest::Url,
    http: reqwest::Client,
    /// The SDK exports from its own thread; requests run on molten's runtime.
    runtime: tokio::runtime::Handle,
    /// The resource's attributes (`service.name`), as the SDK hands them over.
    resource: Vec<Value>,
}

impl SpanExporter for OtlpJson {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let body = encode(&self.resource, &batch);
        let request = self
            .http
            .post(self.url.clone())
            .timeout(EXPORT_TIMEOUT)
            .json(&body);
        let url = self.url.clone();
        let sent = self.runtime.spawn(async move { request.send().await });
        async move {
            let failed = |why: String| Err(OTelSdkError::InternalFailure(why));
            match sent.await {
                Ok(Ok(response)) if response.status().is_success() => Ok(()),
                Ok(Ok(response)) => failed(format!("{url} answered {}", response.status())),
                Ok(Err(e)) => failed(format!("cannot reach {url}: {e}")),
                Err(e) => failed(e.to_string()),
            }
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        let list: Vec<KeyValue> = resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        self.resource = attributes(&list);
    }
}

fn nanos(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

fn value(value: &OtelValue) -> Value {
    match value {
        OtelValue::Bool(b) => json!({ "boolValue": b }),
        OtelValue::I64(i) => json!({ "intValue": i.to_string() }),
        OtelValue::F64(f) => json!({ "doubleValue": f }),
        other => json!({ "stringValue": other.as_str() }),
    }
}

fn attributes(list: &[KeyValue]) -> Vec<Value> {
    list.iter()
        .map(|kv| json!({ "key": kv.key.as_str(), "value": value(&kv.value) }))
        .collect()
}

/// One OTLP `ExportTraceServiceRequest` in its JSON form (hex ids, integers as strings).
fn encode(resource: &[Value], batch: &[SpanData]) -> Value {
    let spans: Vec<Value> = batch
        .iter()
        .map(|span| {
            let parent = if span.parent_span_id == opentelemetry::trace::SpanId::INVALID {
                String::new()
            } else {
                span.parent_span_id.to_string()
            };
            let (code, message) = match &span.status {
                Status::Unset => (0, String::new()),
                Status::Ok => (1, String::new()),
                Status::Error { description } => (2, description.to_string()),
            };
            json!({
                "traceId": span.span_context.trace_id().to_string(),
                "spanId": span.span_context.span_id().to_string(),
                "parentSpanId": parent,
                "name": span.name,
                "kind": 1,
                "startTimeUnixNano": nanos(span.start_time),
                "endTimeUnixNano": nanos(span.end_time),
                "attributes": attributes(&span.attributes),
                "status": { "code": code, "message": message },
            })
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": resource },
            "scopeSpans": [{ "scope": { "name": "molten" }, "spans": spans }],
        }],
    })
}
