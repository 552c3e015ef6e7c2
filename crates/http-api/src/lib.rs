//! Edge layer: the actix-web HTTP API.
//!
//! Parses requests, calls the domain services, and maps their results and
//! errors to JSON and RFC 9457 problem responses. Depends on the domain
//! crates only; the binary injects the services already wired to adapters.

mod audit;
mod auth;
mod body;
mod errors;
mod metrics;
mod middleware;
mod openapi;
pub mod problem;
mod routes;

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::{ResourceDef, Server};
use actix_web::error::UrlencodedError;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, DefaultHeaders, NormalizePath};
use actix_web::{web, App, HttpRequest, HttpServer};
use async_trait::async_trait;
use meditrustal_audit::AuditService;
use meditrustal_identity::{AdminService, IdentityService};
use meditrustal_records::{ConsentService, RecordService};

pub use crate::metrics::{
    encode as encode_metrics, HistogramSample, HttpMetrics, LoginFailure, Metrics, MetricsSource,
    OutboxSample, PoolSample, ServiceSample, METRICS_CONTENT_TYPE,
};
pub use crate::openapi::RouteEntry;
use crate::openapi::{DescriptionJson, RouteTable};
use crate::problem::Problem;

/// Health of one dependency, for `/health/ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentHealth {
    /// Component name: `database` or `chain`.
    pub name: &'static str,
    /// Whether it responded.
    pub ready: bool,
    /// Reason it is not ready. It never contains secrets such as URLs.
    pub detail: Option<String>,
}

/// Checks the service's dependencies. Implemented by the binary, which owns
/// the database pool and the chain client.
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    /// Checks every dependency, each within a short timeout.
    async fn check(&self) -> Vec<ComponentHealth>;
}

/// Services the routes call.
pub struct AppState {
    /// Registration, login and token checks.
    pub identity: Arc<IdentityService>,
    /// Medical records.
    pub records: Arc<RecordService>,
    /// Consents and break-glass access.
    pub consents: Arc<ConsentService>,
    /// User administration.
    pub admin: Arc<AdminService>,
    /// The audit log. Audited routes fail with 503 when it cannot be
    /// written.
    pub audit: Arc<AuditService>,
    /// Dependency checks.
    pub readiness: Arc<dyn ReadinessProbe>,
    /// Request counters and the values `/metrics` samples.
    pub metrics: Metrics,
}

/// HTTP settings from configuration.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Origins allowed to call the API from a browser.
    pub cors_allowed_origins: Vec<String>,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Proxies whose `X-Forwarded-For` header names the client in audit
    /// events. Empty means the TCP peer is always the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Maximum time to receive a request body. A slower client gets 408.
    pub body_timeout: std::time::Duration,
    /// Whether the API listener serves `/metrics`. False when the binary
    /// serves it on its own address with [`metrics_server`].
    pub metrics_on_api: bool,
    /// After SIGTERM or SIGINT, how long requests in flight may take to
    /// finish before their connections are closed. New connections are
    /// refused from the signal on.
    pub shutdown_timeout: std::time::Duration,
}

impl HttpSettings {
    /// Body limit used when no settings are registered (1 MiB).
    pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
    /// Body timeout used when no settings are registered (30 s).
    pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
}

/// Starts the HTTP server on an already bound listener. The returned
/// server runs when awaited; its handle stops it gracefully.
pub fn server(
    listener: TcpListener,
    state: AppState,
    settings: HttpSettings,
) -> std::io::Result<Server> {
    let metrics = web::Data::new(state.metrics.clone());
    let state = web::Data::new(state);
    let metrics_on_api = settings.metrics_on_api;
    let description = api_description(metrics_on_api).to_json().map_err(|error| {
        std::io::Error::other(format!("cannot encode the API description: {error}"))
    })?;
    let description = web::Data::new(DescriptionJson(description));
    let route_methods = web::Data::new(RouteMethods::new(&route_list(metrics_on_api)));
    let workers = settings.workers;
    let shutdown_secs = settings.shutdown_timeout.as_secs();
    let settings = web::Data::new(settings);

    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(settings.clone())
            .app_data(description.clone())
            .app_data(route_methods.clone())
            .app_data(metrics.clone())
            .app_data(form_config(settings.max_body_bytes))
            .app_data(query_config())
            .configure(|config| add_routes(&mut RouteTable::serving(config), metrics_on_api))
            .default_service(web::to(not_found))
            .wrap(NormalizePath::trim())
            // Responses carry personal data; no cache may keep them.
            .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store")))
            .wrap(cors(&settings.cors_allowed_origins))
            .wrap(from_fn(middleware::request_context))
    })
    .shutdown_timeout(shutdown_secs);
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}

/// Starts a server that serves only `GET /metrics`, for
/// `server.metrics_bind`: one worker, no CORS.
pub fn metrics_server(listener: TcpListener, metrics: Metrics) -> std::io::Result<Server> {
    let metrics = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .route("/metrics", web::get().to(metrics::exposition))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .shutdown_timeout(5);
    Ok(server.listen(listener)?.run())
}

/// The routes the API listener serves, in registration order.
/// `metrics_on_api` is [`HttpSettings::metrics_on_api`].
pub fn route_list(metrics_on_api: bool) -> Vec<RouteEntry> {
    let mut table = RouteTable::describing();
    add_routes(&mut table, metrics_on_api);
    table.routes().to_vec()
}

/// The OpenAPI 3.1 description of every route the API listener serves.
pub fn api_description(metrics_on_api: bool) -> utoipa::openapi::OpenApi {
    let mut table = RouteTable::describing();
    add_routes(&mut table, metrics_on_api);
    table.into_description()
}

/// Adds every route. actix tries routes in this order, so a literal
/// segment (`patient/me`) comes before a parameter in the same place.
fn add_routes(table: &mut RouteTable<'_>, metrics_on_api: bool) {
    use routes::{auth, health, mfa, passwords, sessions, users};

    table.scope("", "_unversioned", |table| {
        table
            .route(health::__path_live, health::live)
            .route(health::__path_ready, health::ready);
    });
    if metrics_on_api {
        table.route(metrics::__path_exposition, metrics::exposition);
    }
    table.scope("/api/v1", "", |table| {
        table
            .route(openapi::__path_description, openapi::description)
            .route(health::__path_live, health::live)
            .route(health::__path_ready, health::ready)
            .route(auth::__path_register, auth::register)
            .route(auth::__path_login_json, auth::login_json)
            .route(auth::__path_login_form, auth::login_form)
            .route(mfa::__path_login, mfa::login)
            .route(sessions::__path_refresh, sessions::refresh)
            .route(sessions::__path_logout, sessions::logout)
            .route(sessions::__path_logout_all, sessions::logout_all)
            .route(sessions::__path_list, sessions::list)
            .route(sessions::__path_revoke, sessions::revoke)
            .route(passwords::__path_change, passwords::change)
            .route(passwords::__path_request_reset, passwords::request_reset)
            .route(passwords::__path_confirm_reset, passwords::confirm_reset)
            .route(mfa::__path_enroll, mfa::enroll)
            .route(mfa::__path_confirm, mfa::confirm)
            .route(mfa::__path_disable, mfa::disable)
            .route(users::__path_me, users::me);
        add_record_routes(table);
        add_consent_routes(table);
        add_admin_routes(table);
    });
}

fn add_record_routes(table: &mut RouteTable<'_>) {
    use routes::records;

    table
        .route(records::__path_create, records::create)
        .route(records::__path_list_mine, records::list_mine)
        .route(records::__path_list_for_patient, records::list_for_patient)
        .route(records::__path_read, records::read)
        .route(records::__path_verify, records::verify)
        .route(records::__path_proof, records::proof);
}

fn add_consent_routes(table: &mut RouteTable<'_>) {
    use routes::{break_glass, consents};

    table
        .route(break_glass::__path_open, break_glass::open)
        .route(consents::__path_grant_access, consents::grant_access)
        .route(consents::__path_revoke_access, consents::revoke_access)
        .route(consents::__path_check_access, consents::check_access)
        .route(consents::__path_create, consents::create)
        .route(consents::__path_list, consents::list)
        .route(consents::__path_revoke, consents::revoke)
        .route(break_glass::__path_list, break_glass::list);
}

fn add_admin_routes(table: &mut RouteTable<'_>) {
    use routes::{admin, audit, break_glass};

    table
        .route(admin::__path_list_users, admin::list_users)
        .route(admin::__path_deactivate, admin::deactivate)
        .route(admin::__path_reactivate, admin::reactivate)
        .route(break_glass::__path_review, break_glass::review)
        .route(
            audit::__path_my_record_access_history,
            audit::my_record_access_history,
        )
        .route(audit::__path_search_events, audit::search_events);
}

fn cors(origins: &[String]) -> Cors {
    let cors = origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    cors.allowed_methods(["GET", "POST", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::LINK,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600)
}

fn form_config(limit: usize) -> web::FormConfig {
    web::FormConfig::default().limit(limit).error_handler(|error, _request| {
        let problem = match error {
            UrlencodedError::ContentType => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "Send the login form with Content-Type: application/x-www-form-urlencoded, or use /auth/login/json.",
            ),
            UrlencodedError::Overflow { limit, .. } => body::too_large(limit),
            other => Problem::invalid_field("form", format!("{other}; send the fields username and password")),
        };
        problem.into()
    })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _request| {
        Problem::invalid_field(
            "query",
            format!("{error}; send each query parameter once, with a valid value"),
        )
        .into()
    })
}

/// Path patterns of the served routes with their methods, so that a
/// request for a known path with another method gets 405, not 404.
struct RouteMethods(Vec<(ResourceDef, String)>);

impl RouteMethods {
    fn new(routes: &[RouteEntry]) -> Self {
        let patterns = routes
            .iter()
            .map(|route| (ResourceDef::new(route.path.as_str()), route.method.clone()))
            .collect();
        Self(patterns)
    }

    /// Methods served at `path`, in registration order, without repeats.
    fn allowed(&self, path: &str) -> Vec<&str> {
        let mut methods: Vec<&str> = Vec::new();
        for (pattern, method) in &self.0 {
            if pattern.is_match(path) && !methods.contains(&method.as_str()) {
                methods.push(method);
            }
        }
        methods
    }
}

/// Responds to requests that no route takes: 405 with `Allow` when the path is
/// served with other methods, else 404.
async fn not_found(request: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;

    let allowed = request
        .app_data::<web::Data<RouteMethods>>()
        .map(|routes| routes.allowed(request.path()).join(", "))
        .unwrap_or_default();
    if allowed.is_empty() {
        return Problem::not_found(
            "route_not_found",
            format!(
                "No route matches {} {}. Check the method and path.",
                request.method(),
                request.path()
            ),
        )
        .error_response();
    }

    let mut response = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        format!(
            "{} is not allowed on {}. Use {allowed}.",
            request.method(),
            request.path()
        ),
    )
    .error_response();
    if let Ok(value) = header::HeaderValue::from_str(&allowed) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}
