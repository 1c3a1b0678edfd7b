//! Where logs and traces go: logs to standard error (filtered by `-v` or `RUST_LOG`), and,
//! with `--otlp-endpoint`, Baton's spans (a run, its steps, each tool call and each LLM
//! call, the latter with the OpenTelemetry GenAI attributes) to an OTLP/HTTP collector.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Exports what is left of the traces when dropped (at the end of the command).
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: not every trace reached the OTLP endpoint: {e}");
        }
    }
}

/// Installs the logger and, with `otlp` (a collector's base URL), the trace exporter.
pub fn init(verbose: u8, otlp: Option<&str>) -> Result<Telemetry, String> {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .with_filter(filter);
    let traces = otlp.map(provider).transpose()?;
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("baton"))
            // Baton's own spans, whatever the log level.
            .with_filter(filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with("baton")
            }))
    });
    tracing_subscriber::registry().with(logs).with(spans).init();
    Ok(Telemetry { traces })
}

/// A provider exporting spans in batches to `endpoint`'s `/v1/traces` (OTLP over HTTP,
/// protobuf).
fn provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(format!(
            "--otlp-endpoint {endpoint}: give the http:// or https:// URL of an OTLP/HTTP \
             collector (its port is usually 4318)"
        ));
    }
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(&url)
        .build()
        .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
    let resource = Resource::builder()
        .with_service_name("baton")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
