//! The route table and the OpenAPI 3.1 description built from it.
//!
//! Every route is added through [`RouteTable::route`] with the operation
//! that `#[utoipa::path]` generated for its handler. The same call
//! registers the handler with actix under the operation's method and path
//! and adds the operation to the description, so the two cannot differ.

use std::collections::BTreeMap;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder};
use utoipa::openapi::path::{HttpMethod, Operation, Paths};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Response,
    ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use crate::problem::{FieldProblem, Problem, PROBLEM_JSON};

/// Name of the bearer security scheme in the description.
pub(crate) const BEARER_SCHEME: &str = "bearer";

/// Problem statuses and their stable codes, as a route declares them.
pub(crate) type ProblemList = &'static [(u16, &'static [&'static str])];

/// Problems of every route that reads the database.
pub(crate) const STORE: ProblemList = &[
    (500, &["internal_error"]),
    (503, &["dependency_unavailable"]),
];

/// Problems of the bearer-token check: a missing or rejected token, and a
/// rejected token whose audit event could not be written.
pub(crate) const BEARER: ProblemList = &[(401, &["invalid_token"]), (503, &["audit_unavailable"])];

/// Problems of a route that records an audit event.
pub(crate) const AUDITED: ProblemList = &[(503, &["audit_unavailable"])];

/// Problems of a strict JSON body (see `body::StrictJson`).
pub(crate) const JSON_BODY: ProblemList = &[
    (400, &["malformed_json", "unreadable_body"]),
    (408, &["request_timeout"]),
    (413, &["payload_too_large"]),
    (415, &["unsupported_media_type"]),
    (422, &["validation_failed"]),
];

/// Problems of query parameters that do not parse.
pub(crate) const QUERY: ProblemList = &[(422, &["validation_failed"])];

/// Declares a type whose `IntoResponses` are the problem responses of a
/// route: each status once, its schema the problem body with `code`
/// limited to the listed values.
macro_rules! problems {
    ($name:ident: $($list:expr),+ $(,)?) => {
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::openapi::problem_responses(&[$($list),+])
            }
        }
    };
}
pub(crate) use problems;

/// Builds one problem response per status from `lists`, merging the codes
/// that several lists give for the same status.
pub(crate) fn problem_responses(lists: &[ProblemList]) -> BTreeMap<String, RefOr<Response>> {
    let mut codes: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (status, list) in lists.iter().flat_map(|list| list.iter()) {
        let entry = codes.entry(*status).or_default();
        for code in *list {
            if !entry.contains(code) {
                entry.push(code);
            }
        }
    }
    codes
        .into_iter()
        .map(|(status, codes)| (status.to_string(), problem_response(status, &codes).into()))
        .collect()
}

fn problem_response(status: u16, codes: &[&str]) -> Response {
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes.iter().copied()));
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(ObjectBuilder::new().property("code", code));
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Error");
    ResponseBuilder::new()
        .description(format!(
            "{reason}: a problem with code {}",
            codes.join(", ")
        ))
        .content(
            PROBLEM_JSON,
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

/// A route as the app serves it: method and actix path pattern.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteEntry {
    /// HTTP method in upper case.
    pub method: String,
    /// Path pattern with `{name}` parameters, as in the description.
    pub path: String,
}

/// Registers routes with actix and collects their OpenAPI operations.
pub(crate) struct RouteTable<'a> {
    config: Option<&'a mut web::ServiceConfig>,
    prefix: &'static str,
    operation_suffix: &'static str,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
    routes: Vec<RouteEntry>,
}

impl<'a> RouteTable<'a> {
    /// A table that registers each route with `config`.
    pub(crate) fn serving(config: &'a mut web::ServiceConfig) -> Self {
        Self::new(Some(config))
    }

    /// A table that only collects the description and the route list.
    pub(crate) fn describing() -> RouteTable<'static> {
        RouteTable::new(None)
    }

    fn new(config: Option<&'a mut web::ServiceConfig>) -> Self {
        Self {
            config,
            prefix: "",
            operation_suffix: "",
            paths: Paths::new(),
            schemas: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Adds the routes that `add` adds with `prefix` before their paths.
    /// `operation_suffix` keeps operation ids unique when a handler is
    /// served under two prefixes.
    pub(crate) fn scope(
        &mut self,
        prefix: &'static str,
        operation_suffix: &'static str,
        add: impl FnOnce(&mut Self),
    ) -> &mut Self {
        let outer = (self.prefix, self.operation_suffix);
        self.prefix = prefix;
        self.operation_suffix = operation_suffix;
        add(self);
        (self.prefix, self.operation_suffix) = outer;
        self
    }

    /// Serves `handler` at the method and path of operation `P` (the type
    /// `#[utoipa::path]` generated for it) and adds `P` to the description.
    pub(crate) fn route<P, F, Args>(&mut self, _operation: P, handler: F) -> &mut Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences,
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let path = format!("{}{}", self.prefix, P::path());
        let mut operation: Operation = P::operation();
        if let Some(id) = operation.operation_id.as_mut() {
            id.push_str(self.operation_suffix);
        }

        for method in P::methods() {
            let actix_method = actix_method(&method);
            if let Some(config) = self.config.as_deref_mut() {
                config.route(&path, web::method(actix_method.clone()).to(handler.clone()));
            }
            self.routes.push(RouteEntry {
                method: actix_method.to_string(),
                path: path.clone(),
            });
            self.paths
                .add_path_operation(&path, vec![method], operation.clone());
        }
        P::schemas(&mut self.schemas);
        self
    }

    /// The routes added so far, in registration order.
    pub(crate) fn routes(&self) -> &[RouteEntry] {
        &self.routes
    }

    /// Builds the OpenAPI 3.1 description of the routes added.
    pub(crate) fn into_description(self) -> OpenApi {
        let mut schemas = self.schemas;
        <Problem as ToSchema>::schemas(&mut schemas);
        schemas.push((Problem::name().into_owned(), Problem::schema()));
        schemas.push((FieldProblem::name().into_owned(), FieldProblem::schema()));

        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("PASETO v4.public")
            .description(Some(
                "Access token from POST /api/v1/auth/login/json, /auth/login, \
                 /auth/login/mfa or /auth/refresh; it expires after auth.token_lifetime_secs.",
            ))
            .build();
        let components = ComponentsBuilder::new()
            .schemas_from_iter(schemas)
            .security_scheme(BEARER_SCHEME, SecurityScheme::Http(bearer))
            .build();
        let info = InfoBuilder::new()
            .title("MediTrustAl API")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(
                "Private, tamper-evident medical records. Errors are RFC 9457 \
                 application/problem+json bodies with a stable `code`.",
            ))
            .build();
        OpenApiBuilder::new()
            .info(info)
            .paths(self.paths)
            .components(Some(components))
            .build()
    }
}

fn actix_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// The description as served: JSON text built once at start.
#[derive(Clone, Debug)]
pub(crate) struct DescriptionJson(pub(crate) String);

/// `GET /api/v1/openapi.json`: this description, without authentication.
#[utoipa::path(
    get,
    operation_id = "openapi_description",
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", body = serde_json::Value)),
)]
pub(crate) async fn description(json: web::Data<DescriptionJson>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(json.0.clone())
}
