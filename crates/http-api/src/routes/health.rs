use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;

use crate::AppState;

#[derive(Serialize)]
struct ComponentBody {
    name: &'static str,
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// `GET /health/live`: the process serves requests.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /health/ready`: the database and the chain respond.
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
    response.json(json!({ "status": status, "components": body }))
}
