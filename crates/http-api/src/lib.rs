//! Edge layer: the actix-web HTTP API.
//!
//! Parses requests, calls the domain services, and maps their results and
//! errors to JSON and RFC 9457 problem responses. Depends on the domain
//! crates only; the binary injects the services already wired to adapters.

mod audit;
mod auth;
mod body;
mod errors;
mod middleware;
pub mod problem;
mod routes;

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::error::UrlencodedError;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, DefaultHeaders, NormalizePath};
use actix_web::{web, App, HttpRequest, HttpServer};
use async_trait::async_trait;
use meditrustal_audit::AuditService;
use meditrustal_identity::{AdminService, IdentityService};
use meditrustal_records::{ConsentService, RecordService};

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
    let state = web::Data::new(state);
    let workers = settings.workers;
    let shutdown_secs = settings.shutdown_timeout.as_secs();
    let settings = web::Data::new(settings);

    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(settings.clone())
            .app_data(form_config(settings.max_body_bytes))
            .app_data(query_config())
            .configure(routes)
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

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/health/live", web::get().to(routes::health::live))
        .route("/health/ready", web::get().to(routes::health::ready))
        .service(
            web::scope("/api/v1")
                .route("/health/live", web::get().to(routes::health::live))
                .route("/health/ready", web::get().to(routes::health::ready))
                .route("/auth/register", web::post().to(routes::auth::register))
                .route("/auth/login/json", web::post().to(routes::auth::login_json))
                .route("/auth/login", web::post().to(routes::auth::login_form))
                .route("/auth/login/mfa", web::post().to(routes::mfa::login))
                .route("/auth/refresh", web::post().to(routes::sessions::refresh))
                .route("/auth/logout", web::post().to(routes::sessions::logout))
                .route(
                    "/auth/logout-all",
                    web::post().to(routes::sessions::logout_all),
                )
                .route("/auth/sessions", web::get().to(routes::sessions::list))
                .route(
                    "/auth/sessions/{session_id}",
                    web::delete().to(routes::sessions::revoke),
                )
                .route("/auth/password", web::post().to(routes::passwords::change))
                .route(
                    "/auth/password-reset",
                    web::post().to(routes::passwords::request_reset),
                )
                .route(
                    "/auth/password-reset/confirm",
                    web::post().to(routes::passwords::confirm_reset),
                )
                .route("/auth/mfa/totp", web::post().to(routes::mfa::enroll))
                .route(
                    "/auth/mfa/totp/confirm",
                    web::post().to(routes::mfa::confirm),
                )
                .route(
                    "/auth/mfa/totp/disable",
                    web::post().to(routes::mfa::disable),
                )
                .route("/users/me", web::get().to(routes::users::me))
                .route("/medical-records", web::post().to(routes::records::create))
                .route(
                    "/medical-records/patient/me",
                    web::get().to(routes::records::list_mine),
                )
                .route(
                    "/medical-records/patient/{patient_id}",
                    web::get().to(routes::records::list_for_patient),
                )
                .route(
                    "/medical-records/{record_id}",
                    web::get().to(routes::records::read),
                )
                .route(
                    "/medical-records/{record_id}/verify",
                    web::get().to(routes::records::verify),
                )
                .configure(consent_routes)
                .configure(admin_routes)
                .configure(audit_routes),
        );
}

fn consent_routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/medical-records/patient/{patient_id}/break-glass",
            web::post().to(routes::break_glass::open),
        )
        .route(
            "/medical-records/{record_id}/grant-access",
            web::post().to(routes::consents::grant_access),
        )
        .route(
            "/medical-records/{record_id}/revoke-access",
            web::post().to(routes::consents::revoke_access),
        )
        .route(
            "/medical-records/{record_id}/check-access/{doctor_address}",
            web::get().to(routes::consents::check_access),
        )
        .route("/consents", web::post().to(routes::consents::create))
        .route("/consents", web::get().to(routes::consents::list))
        .route("/consents/{id}", web::delete().to(routes::consents::revoke))
        .route("/break-glass", web::get().to(routes::break_glass::list));
}

fn admin_routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/users", web::get().to(routes::admin::list_users))
        .route(
            "/admin/users/{id}/deactivate",
            web::post().to(routes::admin::deactivate),
        )
        .route(
            "/admin/users/{id}/reactivate",
            web::post().to(routes::admin::reactivate),
        )
        .route(
            "/admin/break-glass",
            web::get().to(routes::break_glass::review),
        );
}

fn audit_routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/audit/my-record-access-history",
            web::get().to(routes::audit::my_record_access_history),
        )
        .route(
            "/admin/audit-events",
            web::get().to(routes::audit::search_events),
        );
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

async fn not_found(request: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    Problem::not_found(
        "route_not_found",
        format!(
            "No route matches {} {}. Check the method and path.",
            request.method(),
            request.path()
        ),
    )
    .error_response()
}
