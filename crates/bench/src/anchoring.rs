//! Anchoring as the database and the chain record it: how long records
//! waited for their anchor, and the gas their transactions used.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;

use crate::db;
use crate::stats;

/// Anchoring of a set of records.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnchoringResult {
    /// Records created for the measurement.
    pub records: usize,
    /// Distinct transactions that anchored them.
    pub transactions: usize,
    /// Gas of those transactions divided by the records.
    pub gas_per_record: f64,
    /// Median time from create to anchored, in milliseconds.
    pub delay_p50_ms: f64,
    /// 99th percentile of that time.
    pub delay_p99_ms: f64,
    /// Longest of that time.
    pub delay_max_ms: f64,
}

/// Anchoring during a load run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Backlog {
    /// Records created during the create runs.
    pub created: u64,
    /// Of those, anchored by the end of the runs.
    pub anchored: u64,
    /// Records anchored per second over the create runs.
    pub anchored_per_second: f64,
}

/// Waits until every record in `ids` is anchored, or fails after `timeout`.
pub async fn wait_until_anchored(
    database_url: &str,
    ids: &[String],
    timeout: Duration,
) -> anyhow::Result<()> {
    let list = id_list(ids)?;
    let deadline = Instant::now() + timeout;
    loop {
        let anchored: usize = db::scalar(
            database_url,
            &format!(
                "SELECT count(*) FROM medical_records \
                 WHERE id IN ({list}) AND anchor_status = 'anchored'"
            ),
        )
        .await?;
        if anchored == ids.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{anchored} of {} records were anchored within {} s",
                ids.len(),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Measures the anchoring of `ids`, which must all be anchored: delays
/// from the database, gas from the receipts on `rpc_url`.
pub async fn measure(
    database_url: &str,
    rpc_url: &str,
    ids: &[String],
) -> anyhow::Result<AnchoringResult> {
    let list = id_list(ids)?;
    let mut delays: Vec<f64> = db::query(
        database_url,
        &format!(
            "SELECT EXTRACT(EPOCH FROM (anchored_at - created_at)) * 1000 \
             FROM medical_records WHERE id IN ({list})"
        ),
    )
    .await?
    .iter()
    .map(|row| row.parse::<f64>())
    .collect::<Result<_, _>>()
    .context("invalid anchoring delay")?;
    stats::sort(&mut delays);

    let rows = db::query(
        database_url,
        &format!(
            "SELECT encode(anchor_tx_hash, 'hex') FROM medical_records \
             WHERE id IN ({list}) AND anchor_tx_hash IS NOT NULL"
        ),
    )
    .await?;
    let transactions = count_by_value(&rows);
    let client = reqwest::Client::new();
    let mut gas = 0u64;
    for hash in transactions.keys() {
        gas += gas_used(&client, rpc_url, hash).await?;
    }

    Ok(AnchoringResult {
        records: ids.len(),
        transactions: transactions.len(),
        gas_per_record: gas as f64 / ids.len().max(1) as f64,
        delay_p50_ms: stats::percentile(&delays, 50.0).unwrap_or(0.0),
        delay_p99_ms: stats::percentile(&delays, 99.0).unwrap_or(0.0),
        delay_max_ms: delays.last().copied().unwrap_or(0.0),
    })
}

/// Counts the records created and anchored at or after `since` (a
/// PostgreSQL timestamp), and the anchoring rate over `seconds`.
pub async fn backlog(database_url: &str, since: &str, seconds: f64) -> anyhow::Result<Backlog> {
    let rows = db::query(
        database_url,
        &format!(
            "SELECT count(*), count(*) FILTER (WHERE anchor_status = 'anchored') \
             FROM medical_records WHERE created_at >= '{since}'"
        ),
    )
    .await?;
    let Some((created, anchored)) = rows.first().and_then(|row| row.split_once('|')) else {
        bail!("the backlog query returned no row");
    };
    let anchored: u64 = anchored.parse()?;
    Ok(Backlog {
        created: created.parse()?,
        anchored,
        anchored_per_second: anchored as f64 / seconds.max(f64::EPSILON),
    })
}

/// Returns the gas a mined transaction used.
async fn gas_used(client: &reqwest::Client, rpc_url: &str, hash: &str) -> anyhow::Result<u64> {
    let request = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_getTransactionReceipt",
        "params": [format!("0x{hash}")],
    });
    let response: serde_json::Value = client
        .post(rpc_url)
        .json(&request)
        .send()
        .await?
        .json()
        .await?;
    let Some(gas) = response["result"]["gasUsed"].as_str() else {
        bail!("no receipt for transaction 0x{hash}: {response}");
    };
    parse_quantity(gas)
}

/// Parses a JSON-RPC quantity such as `0x5208`.
pub fn parse_quantity(text: &str) -> anyhow::Result<u64> {
    let digits = text
        .strip_prefix("0x")
        .with_context(|| format!("quantity {text:?} has no 0x prefix"))?;
    u64::from_str_radix(digits, 16).with_context(|| format!("invalid quantity {text:?}"))
}

fn count_by_value(rows: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row.clone()).or_insert(0) += 1;
    }
    counts
}

/// Returns `ids` as a SQL list of quoted UUIDs, after checking that each
/// is a UUID, so that no text reaches the SQL unchecked.
fn id_list(ids: &[String]) -> anyhow::Result<String> {
    if ids.is_empty() {
        bail!("no record ids to check");
    }
    let mut list = Vec::with_capacity(ids.len());
    for id in ids {
        let is_uuid = id.len() == 36
            && id
                .chars()
                .all(|character| character.is_ascii_hexdigit() || character == '-');
        if !is_uuid {
            bail!("{id:?} is not a record id");
        }
        list.push(format!("'{id}'"));
    }
    Ok(list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_is_hex() {
        assert_eq!(parse_quantity("0x5208").unwrap(), 21000);
        assert_eq!(
            parse_quantity("5208").unwrap_err().to_string(),
            "quantity \"5208\" has no 0x prefix"
        );
    }

    #[test]
    fn id_list_quotes_uuids() {
        let ids = vec![
            "0b4c5a52-8d3e-4d1e-9a57-2b8c1a9f0e11".to_owned(),
            "1b4c5a52-8d3e-4d1e-9a57-2b8c1a9f0e11".to_owned(),
        ];
        assert_eq!(
            id_list(&ids).unwrap(),
            "'0b4c5a52-8d3e-4d1e-9a57-2b8c1a9f0e11','1b4c5a52-8d3e-4d1e-9a57-2b8c1a9f0e11'"
        );
    }

    #[test]
    fn id_list_rejects_other_text() {
        let ids = vec!["x'); DROP TABLE users; --".to_owned()];
        assert_eq!(
            id_list(&ids).unwrap_err().to_string(),
            "\"x'); DROP TABLE users; --\" is not a record id"
        );
    }

    #[test]
    fn transactions_are_counted_once() {
        let rows = vec!["aa".to_owned(), "bb".to_owned(), "aa".to_owned()];
        let counts = count_by_value(&rows);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["aa"], 2);
        assert_eq!(counts["bb"], 1);
    }
}
