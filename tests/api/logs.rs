//! The JSON log of a request sequence: one `request completed` line per
//! request with its id, route pattern, status, latency and user, and no
//! secret, e-mail address, client address or record content.
//!
//! This file is its own test binary, so its one test owns the global
//! subscriber.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use meditrustal::config::{LogFormat, LogSettings};
use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::{TestApp, PASSWORD};
use tracing_subscriber::fmt::MakeWriter;

/// Collects every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'writer> MakeWriter<'writer> for Captured {
    type Writer = Captured;

    fn make_writer(&'writer self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| meditrustal_tests::serde_json::from_str(line).unwrap())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The `request completed` line of the request with id `request_id`.
fn completed<'lines>(lines: &'lines [Value], request_id: &str) -> &'lines Value {
    let matching: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "request completed")
        .filter(|line| line["span"]["request.id"] == request_id)
        .collect();
    assert_eq!(matching.len(), 1, "lines of request {request_id}");
    matching[0]
}

#[tokio::test]
async fn json_log_has_request_fields_and_no_secrets() {
    let captured = Captured::default();
    let settings = LogSettings {
        format: LogFormat::Json,
        level: "info".into(),
    };
    let subscriber = meditrustal::telemetry::subscriber(&settings, captured.clone(), false);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let app = TestApp::spawn().await.unwrap();
    let email = "grace.hopper@example.org";
    let content = "{\"glucose\": 5.4, \"comment\": \"secret-content\"}";

    let user = app.register("grace", email, "PATIENT").await;
    let login = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": email, "password": PASSWORD}),
            None,
        )
        .await;
    let login_id = login.headers()["x-request-id"].to_str().unwrap().to_owned();
    let tokens: Value = login.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let record = app.create_record(&access, "LAB_RESULT", content).await;
    let record_id = record["id"].as_str().unwrap();
    let read = app
        .client
        .get(app.url(&format!("/medical-records/{record_id}")))
        .bearer_auth(&access)
        .header("x-request-id", "trace-read-1")
        .send()
        .await
        .unwrap();
    let wrong = app.login_with(email, "not the password at all").await;
    let anonymous = app.get("/users/me", None).await;
    let anonymous_id = anonymous.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let lines = captured.lines();

    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    let user_id = user["id"].as_str().unwrap();

    let read_line = completed(&lines, "trace-read-1");
    assert_eq!(read_line["level"], "INFO");
    assert_eq!(
        read_line["http.route"],
        "/api/v1/medical-records/{record_id}"
    );
    assert_eq!(read_line["http.status"], 200);
    assert!(read_line["elapsed_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(read_line["span"]["http.method"], "GET");
    assert_eq!(read_line["span"]["user.id"], user_id);

    let login_line = completed(&lines, &login_id);
    assert_eq!(login_line["http.route"], "/api/v1/auth/login/json");
    assert_eq!(login_line["http.status"], 200);
    assert!(login_line["span"].get("user.id").is_none());

    let anonymous_line = completed(&lines, &anonymous_id);
    assert_eq!(anonymous_line["http.route"], "/api/v1/users/me");
    assert_eq!(anonymous_line["http.status"], 401);
    assert!(anonymous_line["span"].get("user.id").is_none());

    let text = captured.text();
    for secret in [
        email,
        PASSWORD,
        "not the password at all",
        &access,
        &refresh,
        "secret-content",
    ] {
        assert!(!text.contains(secret), "the log contains {secret:?}");
    }
    assert!(!text.contains("grace"), "the log contains the username");
    // Lines logged while serving a request never carry the client address;
    // start-up lines name the server's own listen address.
    for line in lines.iter().filter(|line| line.get("span").is_some()) {
        assert!(!line.to_string().contains("127.0.0.1"), "address in {line}");
    }
}
