use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// Liveness of the process.
#[derive(Serialize, ToSchema)]
pub(crate) struct LiveBody {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// Readiness of the service and of each dependency.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReadyBody {
    /// `ready` when every component responded, otherwise `unavailable`.
    #[schema(example = "ready")]
    status: &'static str,
    components: Vec<ComponentBody>,
}

/// One dependency of the service.
#[derive(Serialize, ToSchema)]
pub(crate) struct ComponentBody {
    /// `database` or `chain`.
    name: &'static str,
    ready: bool,
    /// Why the component is not ready; never a URL or secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// `GET /health/live`: the process serves requests.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses((status = 200, description = "The process serves requests", body = LiveBody)),
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(LiveBody { status: "ok" })
}

/// `GET /health/ready`: the database and the chain respond.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "The database and the chain respond", body = ReadyBody),
        (status = 503, description = "A dependency does not respond", body = ReadyBody),
    ),
)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let components = state.readiness.check().await;
    let ready = components.iter().all(|component| component.ready);
    let body: Vec<ComponentBody> = components
        .into_iter()
        .map(|component| ComponentBody {
            name: component.name,
            ready: component.ready,
            detail: component.detail,
        })
        .collect();

    let status = if ready { "ready" } else { "unavailable" };
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.json(ReadyBody {
        status,
        components: body,
    })
}
