//! Where a scenario's pods send their spans, and how the harness reads them back: the embedded
//! [`Receiver`] on the embedded cluster (pods reach 127.0.0.1), Jaeger (deploy/jaeger) on a
//! real cluster, read through the API server's Service proxy.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Span;
use super::jaeger::Jaeger;
use super::receiver::Receiver;
use crate::cluster::endpoint::Endpoint;

/// Namespace of Jaeger on real clusters (deploy/jaeger).
pub const JAEGER_NS: &str = "observability";
/// OTLP/HTTP endpoint of Jaeger's collector, as pods in other namespaces reach it.
pub const JAEGER_OTLP: &str = "http://jaeger-collector.observability.svc:4318";

/// The scenario's span sink.
#[derive(Debug)]
pub enum Sink {
    /// The harness's own OTLP receiver (embedded cluster).
    Embedded(Receiver),
    /// Jaeger in the cluster.
    Jaeger(Jaeger),
}

impl Sink {
    /// An embedded receiver on a free port of 127.0.0.1.
    pub async fn embedded() -> anyhow::Result<Self> {
        Ok(Sink::Embedded(Receiver::start().await.context("starting the OTLP receiver")?))
    }

    /// Jaeger of deploy/jaeger, read through the API server.
    pub fn jaeger(client: kube::Client) -> Self {
        Sink::Jaeger(Jaeger::at(Endpoint::service(client, JAEGER_NS, "jaeger-query", "16686")))
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the pods.
    pub fn otlp_endpoint(&self) -> String {
        match self {
            Sink::Embedded(r) => r.endpoint(),
            Sink::Jaeger(_) => JAEGER_OTLP.to_string(),
        }
    }

    /// The spans of the traces `service` (the vehicles) started in the last `lookback`, once
    /// no new span has arrived for a second (exporters batch; at most `limit` to settle).
    pub async fn spans(&self, service: &str, lookback: Duration, limit: Duration) -> anyhow::Result<Vec<Span>> {
        match self {
            Sink::Embedded(r) => {
                r.store().wait_quiet(Duration::from_secs(1), limit).await.context("waiting for the pods' spans")?;
                Ok(r.store().spans())
            }
            Sink::Jaeger(j) => {
                // Jaeger indexes spans a little after it receives them: read until two reads
                // a second apart agree.
                let deadline = Instant::now() + limit;
                let mut last: Option<Vec<Span>> = None;
                loop {
                    let spans = j.spans_of_service(service, lookback, 100_000).await?;
                    let ids = |s: &[Span]| s.iter().map(|s| s.span_id).collect::<HashSet<_>>();
                    if let Some(prev) = &last
                        && (ids(prev) == ids(&spans) || Instant::now() >= deadline)
                    {
                        return Ok(spans);
                    }
                    last = Some(spans);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The spans received so far, without waiting (for a failure bundle).
    pub async fn spans_now(&self, service: &str, lookback: Duration) -> anyhow::Result<Vec<Span>> {
        match self {
            Sink::Embedded(r) => Ok(r.store().spans()),
            Sink::Jaeger(j) => j.spans_of_service(service, lookback, 100_000).await,
        }
    }

    /// Stops an embedded receiver (Jaeger stays).
    pub async fn stop(self) {
        if let Sink::Embedded(r) = self {
            r.stop().await;
        }
    }
}
