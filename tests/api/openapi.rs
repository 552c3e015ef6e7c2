//! The OpenAPI description against the routes the app serves.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::collections::BTreeSet;

use meditrustal_tests::reqwest::{Method, StatusCode};
use meditrustal_tests::serde_json::Value;
use meditrustal_tests::TestApp;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Every (method, path) pair of a description, method in upper case.
fn described_operations(description: &Value) -> BTreeSet<(String, String)> {
    let paths = description["paths"].as_object().expect("paths object");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn registered_operations(metrics_on_api: bool) -> BTreeSet<(String, String)> {
    meditrustal_http_api::route_list(metrics_on_api)
        .into_iter()
        .map(|route| (route.method, route.path))
        .collect()
}

async fn served_description(app: &TestApp) -> Value {
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn description_is_openapi_3_1_without_token() {
    let app = TestApp::spawn().await.unwrap();

    let description = served_description(&app).await;

    assert_eq!(description["openapi"], "3.1.0");
    assert_eq!(description["info"]["title"], "MediTrustAl API");
    let bearer = &description["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(bearer["bearerFormat"], "PASETO v4.public");
}

#[tokio::test]
async fn every_registered_route_is_described() {
    let app = TestApp::spawn().await.unwrap();
    let described = described_operations(&served_description(&app).await);

    let registered = registered_operations(true);

    let missing: Vec<_> = registered.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the description: {missing:?}"
    );
    assert!(registered.contains(&("GET".into(), "/api/v1/medical-records/{record_id}".into())));
    assert!(registered.contains(&("POST".into(), "/api/v1/auth/login".into())));
}

#[tokio::test]
async fn every_described_route_is_registered() {
    let app = TestApp::spawn().await.unwrap();
    let described = described_operations(&served_description(&app).await);

    let registered = registered_operations(true);

    let extra: Vec<_> = described.difference(&registered).collect();
    assert!(
        extra.is_empty(),
        "described routes the app does not register: {extra:?}"
    );
}

/// Sends each described operation, without a token or body, with every
/// path parameter filled in, and checks that a route matched: the
/// fallback answers 404 `route_not_found` to anything else.
#[tokio::test]
async fn every_described_route_is_served() {
    let app = TestApp::spawn().await.unwrap();
    let description = served_description(&app).await;

    for (method, path) in described_operations(&description) {
        let concrete = path
            .replace(
                "{doctor_address}",
                "0x00000000000000000000000000000000000000aa",
            )
            .replace("{record_id}", "7d0bd5a4-5b0e-4f5c-9c55-37a0b8d5f1a1")
            .replace("{patient_id}", "7d0bd5a4-5b0e-4f5c-9c55-37a0b8d5f1a2")
            .replace("{session_id}", "7d0bd5a4-5b0e-4f5c-9c55-37a0b8d5f1a3")
            .replace("{id}", "7d0bd5a4-5b0e-4f5c-9c55-37a0b8d5f1a4");
        assert!(!concrete.contains('{'), "unfilled parameter in {path}");
        let url = format!("{}{concrete}", app.base_url);

        let response = app
            .client
            .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
            .send()
            .await
            .unwrap();

        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("\"route_not_found\""),
            "{method} {path} is described but not served: {status} {body}"
        );
    }
}

#[tokio::test]
async fn unknown_route_is_neither_described_nor_served() {
    let app = TestApp::spawn().await.unwrap();
    let description = served_description(&app).await;

    let response = app
        .get("/medical-records/unknown/extra/segments", None)
        .await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "route_not_found");
    assert!(description["paths"]
        .get("/api/v1/medical-records/unknown/extra/segments")
        .is_none());
}

#[tokio::test]
async fn metrics_route_is_described_only_where_served() {
    let app = TestApp::spawn_with(|settings| {
        settings.server.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await
    .unwrap();

    let description = served_description(&app).await;
    let on_api = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();

    assert!(description["paths"].get("/metrics").is_none());
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    assert!(registered_operations(true).contains(&("GET".into(), "/metrics".into())));
    assert!(!registered_operations(false).contains(&("GET".into(), "/metrics".into())));
}

/// Authenticated operations list the bearer scheme and its 401, and every
/// problem response limits `code` to stable values.
#[tokio::test]
async fn operations_declare_security_and_problem_codes() {
    let app = TestApp::spawn().await.unwrap();
    let description = served_description(&app).await;
    let public: BTreeSet<&str> = [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/health/live",
        "/api/v1/health/ready",
        "/api/v1/auth/register",
        "/api/v1/auth/login/json",
        "/api/v1/auth/login",
        "/api/v1/auth/login/mfa",
        "/api/v1/auth/refresh",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/password-reset/confirm",
    ]
    .into_iter()
    .collect();
    let mut operation_ids = BTreeSet::new();

    for (method, path) in described_operations(&description) {
        let operation = &description["paths"][&path][method.to_lowercase()];
        let id = operation["operationId"].as_str().unwrap().to_owned();
        assert!(
            operation_ids.insert(id.clone()),
            "duplicate operationId {id}"
        );
        let secured = operation.get("security").is_some();
        assert_eq!(
            secured,
            !public.contains(path.as_str()),
            "security of {method} {path}"
        );
        if secured {
            assert_eq!(operation["security"][0]["bearer"], Value::Array(Vec::new()));
            let codes = &operation["responses"]["401"]["content"]["application/problem+json"]
                ["schema"]["allOf"][1]["properties"]["code"]["enum"];
            assert!(
                codes
                    .as_array()
                    .unwrap()
                    .contains(&Value::from("invalid_token")),
                "{method} {path} lacks 401 invalid_token"
            );
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            let Some(problem) = response["content"].get("application/problem+json") else {
                continue;
            };
            let schema = &problem["schema"]["allOf"];
            assert_eq!(schema[0]["$ref"], "#/components/schemas/Problem");
            let codes = schema[1]["properties"]["code"]["enum"].as_array().unwrap();
            assert!(!codes.is_empty(), "{method} {path} {status} lists no code");
        }
    }
}
