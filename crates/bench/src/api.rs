//! Calls to the API outside the timed load: registering the bench user,
//! logging in, and creating records at a steady pace.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The FHIR R4 Observation sent as every record's content: the HL7 example
/// `observation-example-f001-glucose.json` without its identifier and with
/// a shorter narrative, minified to exactly 1 KiB.
pub const OBSERVATION: &str = include_str!("../data/observation-f001-1k.json");

/// Password of the bench user; the server rejects it nowhere else.
pub const PASSWORD: &str = "bench load password 1";

/// Path of the record collection.
pub const RECORDS_PATH: &str = "/api/v1/medical-records";

/// Path of the JSON login.
pub const LOGIN_PATH: &str = "/api/v1/auth/login/json";

/// Path of the caller's record listing, 20 per page.
pub const LIST_PATH: &str = "/api/v1/medical-records/patient/me?limit=20";

/// Returns the body of a record create request carrying [`OBSERVATION`].
pub fn create_body() -> String {
    json!({
        "record_type": "LAB_RESULT",
        "record_metadata": {"source": "bench"},
        "raw_data": OBSERVATION,
    })
    .to_string()
}

/// Returns the body of a login request for `username`.
pub fn login_body(username: &str) -> String {
    json!({"username_or_email": username, "password": PASSWORD}).to_string()
}

/// A client of one server.
pub struct Api {
    base_url: String,
    http: reqwest::Client,
}

impl Api {
    /// Creates a client of the server at `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Registers patient `username`.
    pub async fn register_patient(&self, username: &str) -> anyhow::Result<()> {
        let body = json!({
            "username": username,
            "email": format!("{username}@bench.example.org"),
            "password": PASSWORD,
            "role": "PATIENT",
        });
        let response = self
            .http
            .post(format!("{}/api/v1/auth/register", self.base_url))
            .json(&body)
            .send()
            .await?;
        expect_status(response, 201, "register").await?;
        Ok(())
    }

    /// Logs `username` in and returns the access token.
    pub async fn login(&self, username: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}{LOGIN_PATH}", self.base_url))
            .header("content-type", "application/json")
            .body(login_body(username))
            .send()
            .await?;
        let body = expect_status(response, 200, "login").await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("the login response has no access_token")
    }

    /// Creates one record and returns its id.
    pub async fn create_record(&self, token: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}{RECORDS_PATH}", self.base_url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(create_body())
            .send()
            .await?;
        let body = expect_status(response, 201, "create record").await?;
        body["id"]
            .as_str()
            .map(str::to_owned)
            .context("the create response has no id")
    }

    /// Creates `count` records one after another, starting one every
    /// `interval`, and returns their ids.
    pub async fn create_paced(
        &self,
        token: &str,
        count: usize,
        interval: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let mut ticker = tokio::time::interval(interval);
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            ticker.tick().await;
            ids.push(self.create_record(token).await?);
        }
        Ok(ids)
    }
}

async fn expect_status(
    response: reqwest::Response,
    expected: u16,
    what: &str,
) -> anyhow::Result<Value> {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if status != expected {
        bail!("{what} returned {status}, expected {expected}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what} returned invalid JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_is_one_kib_of_fhir_json() {
        assert_eq!(OBSERVATION.len(), 1024);
        let value: Value = serde_json::from_str(OBSERVATION).unwrap();
        assert_eq!(value["resourceType"], "Observation");
        assert_eq!(value["code"]["coding"][0]["code"], "15074-8");
    }

    #[test]
    fn create_body_carries_the_observation_verbatim() {
        let body: Value = serde_json::from_str(&create_body()).unwrap();
        assert_eq!(body["record_type"], "LAB_RESULT");
        assert_eq!(body["raw_data"].as_str(), Some(OBSERVATION));
    }
}
