//! Prometheus metrics: request counts and latencies per route pattern,
//! login failures, and the gauges the binary samples at scrape time (pool,
//! outbox, anchoring delay, chain errors).
//!
//! Labels never carry user data: routes are patterns (`/medical-records/
//! {record_id}`), methods outside the standard set are counted as `OTHER`,
//! and reasons and kinds come from fixed lists.

use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::{web, HttpResponse};
use async_trait::async_trait;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::problem::Problem;

/// Media type of the exposition (OpenMetrics text, which Prometheus reads).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Labels of one request series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// Labels of one login failure series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginFailureLabels {
    reason: &'static str,
}

/// Why a login failed, as the `reason` label shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong name or password.
    InvalidCredentials,
    /// A wrong or reused second-factor code, or an invalid MFA token.
    InvalidMfaCode,
    /// The name, user or client address is locked.
    TooManyAttempts,
}

impl LoginFailure {
    fn label(self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidMfaCode => "invalid_mfa_code",
            Self::TooManyAttempts => "too_many_attempts",
        }
    }
}

/// Metrics the HTTP layer counts itself. Cloning shares the counters.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    login_failures: Family<LoginFailureLabels, Counter>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            login_failures: Family::default(),
        }
    }
}

impl HttpMetrics {
    /// Counts one finished request under its route pattern.
    pub(crate) fn observe_request(
        &self,
        method: &Method,
        route: &str,
        status: u16,
        elapsed_secs: f64,
    ) {
        let labels = RequestLabels {
            method: method_label(method),
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(elapsed_secs);
    }

    /// Counts one failed login.
    pub(crate) fn login_failed(&self, reason: LoginFailure) {
        let labels = LoginFailureLabels {
            reason: reason.label(),
        };
        self.login_failures.get_or_create(&labels).inc();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests by method, route pattern and status",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a request to its response, by method, route pattern and status",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register(
            "login_failures",
            "Failed logins by reason (password step and second-factor step)",
            self.login_failures.clone(),
        );
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Use of the database connection pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolSample {
    /// Configured maximum of connections.
    pub max_size: u64,
    /// Open connections.
    pub size: u64,
    /// Open connections that are idle.
    pub available: u64,
    /// Requests waiting for a connection.
    pub waiting: u64,
}

/// Unfinished chain jobs in the outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OutboxSample {
    /// Jobs not yet sent, or sent again after a failure.
    pub pending: u64,
    /// Jobs whose transaction was sent and awaits its receipt.
    pub sent: u64,
    /// Seconds since the oldest job that is due now was created; 0 when
    /// none is due.
    pub oldest_due_age_secs: f64,
}

/// A histogram read from stored data: per-bucket counts (not cumulative),
/// the last bound `+Inf`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSample {
    /// Upper bound and the count of values above the previous bound.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all values.
    pub sum: f64,
    /// Number of values.
    pub count: u64,
}

impl EncodeMetric for HistogramSample {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Values the binary reads when Prometheus scrapes. A part that could not
/// be read (database down) is `None` and left out of the exposition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceSample {
    /// Connection pool use.
    pub pool: Option<PoolSample>,
    /// Outbox backlog.
    pub outbox: Option<OutboxSample>,
    /// Seconds from creating a record to its anchor being mined, over
    /// every anchored record.
    pub anchoring_delay: Option<HistogramSample>,
    /// Failed chain calls since start, by error kind (`unavailable`,
    /// `contracts_missing`, `rejected`).
    pub chain_errors: Vec<(&'static str, u64)>,
}

/// Reads the sampled metrics. Implemented by the binary, which owns the
/// pool, the outbox store and the chain client.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// Reads every sampled value; each query within a short timeout.
    async fn sample(&self) -> ServiceSample;
}

/// Values read at scrape time, one series per label value. `label` is the
/// label's name; the values come from fixed lists, never from requests.
#[derive(Debug)]
struct LabeledValues {
    metric_type: MetricType,
    label: &'static str,
    values: Vec<(&'static str, u64)>,
}

impl EncodeMetric for LabeledValues {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (value_label, value) in &self.values {
            let labels = [(self.label, *value_label)];
            let series = encoder.encode_family(&labels)?;
            match self.metric_type {
                MetricType::Counter => series_counter(series, *value)?,
                _ => series_gauge(series, *value)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.metric_type
    }
}

fn series_counter(mut series: MetricEncoder, value: u64) -> Result<(), std::fmt::Error> {
    series.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn series_gauge(mut series: MetricEncoder, value: u64) -> Result<(), std::fmt::Error> {
    series.encode_gauge(&value)
}

/// A gauge read at scrape time.
#[derive(Debug)]
struct SampledGauge(f64);

impl EncodeMetric for SampledGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// Encodes the HTTP metrics and `sample` in the OpenMetrics text format,
/// every name prefixed with `meditrustal_`.
pub fn encode(metrics: &HttpMetrics, sample: ServiceSample) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("meditrustal");
    metrics.register(&mut registry);

    if let Some(pool) = sample.pool {
        registry.register(
            "db_pool_connections",
            "Database pool connections: max (configured), size (open), available (idle), \
             waiting (requests queued for one)",
            LabeledValues {
                metric_type: MetricType::Gauge,
                label: "state",
                values: vec![
                    ("max", pool.max_size),
                    ("size", pool.size),
                    ("available", pool.available),
                    ("waiting", pool.waiting),
                ],
            },
        );
    }
    if let Some(outbox) = sample.outbox {
        registry.register(
            "outbox_jobs",
            "Unfinished chain jobs in the outbox by status",
            LabeledValues {
                metric_type: MetricType::Gauge,
                label: "status",
                values: vec![("pending", outbox.pending), ("sent", outbox.sent)],
            },
        );
        registry.register_with_unit(
            "outbox_oldest_due_job_age",
            "Age of the oldest outbox job that is due now, 0 when none is due",
            Unit::Seconds,
            SampledGauge(outbox.oldest_due_age_secs),
        );
    }
    if let Some(delay) = sample.anchoring_delay {
        registry.register_with_unit(
            "record_anchoring_delay",
            "Time from creating a record to its anchor being mined, over every anchored record",
            Unit::Seconds,
            delay,
        );
    }
    registry.register(
        "chain_errors",
        "Failed chain calls since start by error kind",
        LabeledValues {
            metric_type: MetricType::Counter,
            label: "kind",
            values: sample.chain_errors,
        },
    );

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// The metrics of one service: what the HTTP layer counts and where the
/// sampled values come from. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    /// Request and login counters.
    pub http: HttpMetrics,
    /// Values read at scrape time.
    pub source: Arc<dyn MetricsSource>,
}

crate::openapi::problems!(MetricsProblems: &[(500, &["internal_error"])]);

/// `GET /metrics`: the Prometheus exposition, without authentication.
/// With `server.metrics_bind` set it is served only there.
#[utoipa::path(
    get,
    operation_id = "metrics",
    path = "/metrics",
    tag = "meta",
    responses(
        (status = 200, description = "Metrics in the OpenMetrics text format",
            content_type = "application/openmetrics-text", body = String),
        MetricsProblems,
    ),
)]
pub(crate) async fn exposition(metrics: web::Data<Metrics>) -> Result<HttpResponse, Problem> {
    let sample = metrics.source.sample().await;

    let text = encode(&metrics.http, sample).map_err(|error| {
        tracing::error!(%error, "metrics could not be encoded");
        Problem::internal()
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, METRICS_CONTENT_TYPE))
        .body(text))
}
