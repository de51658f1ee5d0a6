//! Where a scenario's pods send their spans, and how the harness reads them back: the embedded
//! [`Receiver`] on the embedded cluster (pods reach 127.0.0.1), Jaeger (deploy/jaeger) on a
//! real cluster, read through the API server's Service proxy.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Service;

use super::Span;
use super::jaeger::Jaeger;
use super::receiver::Receiver;
use crate::cluster::endpoint::Endpoint;

/// Namespace of Jaeger on real clusters (deploy/jaeger).
pub const JAEGER_NS: &str = "observability";
/// OTLP/HTTP endpoint of Jaeger's collector, as pods in other namespaces reach it by name.
pub const JAEGER_OTLP: &str = "http://jaeger-collector.observability.svc:4318";
/// Jaeger's collector Service (deploy/jaeger) and its OTLP/HTTP port.
const COLLECTOR: (&str, i32) = ("jaeger-collector", 4318);

/// The scenario's span sink.
#[derive(Debug)]
pub enum Sink {
    /// The harness's own OTLP receiver (embedded cluster).
    Embedded(Receiver),
    /// Jaeger in the cluster, and where the pods send it their spans.
    Jaeger(Jaeger, String),
}

impl Sink {
    /// An embedded receiver on a free port of 127.0.0.1.
    pub async fn embedded() -> anyhow::Result<Self> {
        Ok(Sink::Embedded(Receiver::start().await.context("starting the OTLP receiver")?))
    }

    /// Jaeger of deploy/jaeger, read through the API server. The pods send their spans to the
    /// collector Service's cluster IP, which every pod reaches whether or not the cluster has
    /// DNS (the embedded cluster has none); without that Service, to its DNS name.
    pub async fn jaeger(client: kube::Client) -> anyhow::Result<Self> {
        let services: kube::Api<Service> = kube::Api::namespaced(client.clone(), JAEGER_NS);
        let (name, port) = COLLECTOR;
        let svc = services.get_opt(name).await.with_context(|| format!("reading service {JAEGER_NS}/{name}"))?;
        let ip = svc.as_ref().and_then(|s| s.spec.as_ref()).and_then(|s| s.cluster_ip.clone());
        let otlp = match ip.filter(|ip| !ip.is_empty() && ip != "None") {
            Some(ip) if ip.contains(':') => format!("http://[{ip}]:{port}"),
            Some(ip) => format!("http://{ip}:{port}"),
            None => {
                tracing::warn!("no service {JAEGER_NS}/{name} (deploy/jaeger): the pods' spans go to {JAEGER_OTLP}");
                JAEGER_OTLP.to_string()
            }
        };
        Ok(Sink::Jaeger(Jaeger::at(Endpoint::service(client, JAEGER_NS, "jaeger-query", "16686")), otlp))
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the pods.
    pub fn otlp_endpoint(&self) -> String {
        match self {
            Sink::Embedded(r) => r.endpoint(),
            Sink::Jaeger(_, otlp) => otlp.clone(),
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
            Sink::Jaeger(j, _) => {
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
            Sink::Jaeger(j, _) => j.spans_of_service(service, lookback, 100_000).await,
        }
    }

    /// Stops an embedded receiver (Jaeger stays).
    pub async fn stop(self) {
        if let Sink::Embedded(r) = self {
            r.stop().await;
        }
    }
}
