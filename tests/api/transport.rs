//! HTTP transport rules: content types, size limits, malformed JSON, CORS,
//! trailing slashes, request ids and health endpoints.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::{TestApp, PASSWORD};

const LIMIT: usize = 4096;

async fn expect_problem(
    response: meditrustal_tests::reqwest::Response,
    status: StatusCode,
    code: &str,
) -> Value {
    assert_eq!(response.status(), status, "expected {code}");
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json", "{code}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["detail"].is_string(),
        "detail must be a string: {body}"
    );
    assert!(body["title"].is_string());
    assert_eq!(body["type"], format!("urn:meditrustal:problem:{code}"));
    body
}

fn register_body_of_size(size: usize) -> String {
    let skeleton = json!({"username": "sam", "email": "sam@example.org", "password": PASSWORD, "role": "PATIENT", "full_name": ""}).to_string();
    let padding = size - skeleton.len();
    skeleton.replace(
        r#""full_name":"""#,
        &format!(r#""full_name":"{}""#, "x".repeat(padding)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_content_types_and_malformed_json() {
    let app = TestApp::spawn_with(|settings| settings.server.max_body_bytes = LIMIT)
        .await
        .unwrap();
    let url = app.url("/auth/register");

    let at_limit = register_body_of_size(LIMIT);
    assert_eq!(at_limit.len(), LIMIT);
    let response = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(at_limit)
        .send()
        .await
        .unwrap();
    // Accepted by the transport; the 4 KiB full name then fails validation.
    expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    let over = register_body_of_size(LIMIT + 1);
    let response = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(over)
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let valid = json!({"username": "sam", "email": "sam@example.org", "password": PASSWORD, "role": "PATIENT"}).to_string();
    let response = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body(valid.clone())
        .send()
        .await
        .unwrap();
    expect_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let response = app
        .client
        .post(&url)
        .body(valid.clone())
        .send()
        .await
        .unwrap();
    expect_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let truncated = &valid[..valid.len() - 7];
    let response = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(truncated.to_owned())
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::BAD_REQUEST, "malformed_json").await;

    let response = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    let mut connection = app.db().connect().unwrap();
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let users = diesel::sql_query("SELECT count(*) AS n FROM users")
        .get_result::<Count>(&mut connection)
        .unwrap();
    assert_eq!(users.n, 0, "no rejected request may write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_mistyped_fields_name_the_field() {
    let app = TestApp::spawn().await.unwrap();

    let missing = app
        .post_json(
            "/auth/register",
            &json!({"username": "sam", "email": "sam@example.org", "role": "PATIENT"}),
            None,
        )
        .await;
    let body = expect_problem(
        missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "password");

    let mistyped = app.post_json("/auth/register", &json!({"username": 42, "email": "sam@example.org", "password": PASSWORD, "role": "PATIENT"}), None).await;
    let body = expect_problem(
        mistyped,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "username");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_get_problem_json() {
    let app = TestApp::spawn().await.unwrap();

    let response = app.get("/no/such/route", None).await;
    expect_problem(response, StatusCode::NOT_FOUND, "route_not_found").await;

    let response = app
        .client
        .delete(app.url("/auth/register"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    let body = expect_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert_eq!(
        body["detail"],
        "DELETE is not allowed on /api/v1/auth/register. Use POST."
    );

    let response = app.client.put(app.url("/users/me/")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    expect_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_slash_is_accepted() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("tina").await;

    let response = app
        .client
        .get(format!("{}/api/v1/users/me/", app.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let response = app
        .client
        .get(format!(
            "{}/api/v1/medical-records/patient/me/",
            app.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allows_configured_origin_only() {
    let app = TestApp::spawn().await.unwrap();
    let preflight = |origin: &'static str| {
        app.client
            .request(
                meditrustal_tests::reqwest::Method::OPTIONS,
                app.url("/medical-records"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };

    let allowed = preflight("http://localhost:5173").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );

    let denied = preflight("http://evil.example").await.unwrap();
    assert!(denied
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed_or_generated() {
    let app = TestApp::spawn().await.unwrap();

    let echoed = app
        .client
        .get(format!("{}/health/live", app.base_url))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");

    let forged = app
        .client
        .get(format!("{}/health/live", app.base_url))
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .unwrap();
    let generated = forged.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_report_dependencies() {
    let app = TestApp::spawn().await.unwrap();

    for path in ["/health/live", "/api/v1/health/live"] {
        let response = app
            .client
            .get(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"status": "ok"})
        );
    }
    let ready: Value = app
        .client
        .get(format!("{}/health/ready", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready,
        json!({"status": "ready", "components": [{"name": "database", "ready": true}, {"name": "chain", "ready": true}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_not_cached() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("uri").await;

    for path in ["/users/me", "/medical-records/patient/me"] {
        let response = app.get(path, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_strings_get_problem_json() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("vic").await;

    let response = app
        .get("/medical-records/patient/me?limit=1&limit=2", Some(&token))
        .await;
    let body = expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_record_fields_are_rejected() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("wes").await;

    let response = app
        .post_json(
            "/medical-records",
            &json!({"record_type": "DIAGNOSIS", "raw_data": "note", "created_at": "2000-01-01T00:00:00Z"}),
            Some(&token),
        )
        .await;

    let body = expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "created_at");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_stored_as_sent() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("xia").await;
    let body = r#"{"record_type":"LAB_RESULT","raw_data":"note","record_metadata":{"ratio":1.00065022141624642,"big":18446744073709551616}}"#;

    let response = app
        .client
        .post(app.url("/medical-records"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();

    let read = app
        .get(&format!("/medical-records/{id}"), Some(&token))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        read.contains(
            r#""record_metadata":{"ratio":1.00065022141624642,"big":18446744073709551616}"#
        ),
        "{read}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|settings| settings.server.body_timeout_ms = 1000)
        .await
        .unwrap();
    let address = app.base_url.trim_start_matches("http://").to_owned();

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"user")
        .await
        .unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;

    assert!(read.is_ok(), "the server kept the stalled request open");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}
