//! Reads the test database and the chain directly, to count what the
//! server wrote.

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};
use ethers::providers::Middleware;
use ethers::types::{Filter, H256};
use meditrustal_adapter_ethers::testing::AnvilNode;
use meditrustal_adapter_ethers::DeploymentManifest;

use crate::TestApp;

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    value: String,
}

/// Runs `sql`, which must return one text column named `value`, on the
/// database at `url`, and returns the values in row order.
pub fn text_rows_at(url: &str, sql: &str) -> Vec<String> {
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(url).expect("connecting to the test database");
    diesel::sql_query(sql)
        .load::<TextRow>(&mut conn)
        .unwrap_or_else(|error| panic!("query failed: {sql}: {error}"))
        .into_iter()
        .map(|row| row.value)
        .collect()
}

/// Runs `sql` (one text column named `value`) on the app's database.
pub fn text_rows(app: &TestApp, sql: &str) -> Vec<String> {
    use secrecy::ExposeSecret;
    text_rows_at(app.settings.database.url.expose_secret(), sql)
}

/// Loads the deployment manifest the app serves.
pub fn manifest(app: &TestApp) -> DeploymentManifest {
    DeploymentManifest::load(&app.data_dir.join("deployment.json")).expect("deployment manifest")
}

/// Returns `(record hash, transaction hash)` of every `RecordAdded` event
/// of the record registry on `anvil`, in chain order, as `0x` hex.
pub async fn record_added_events(
    anvil: &AnvilNode,
    manifest: &DeploymentManifest,
) -> Vec<(String, String)> {
    let provider = anvil.provider().expect("provider");
    let signature = H256(ethers::utils::keccak256(
        "RecordAdded(bytes32,string,string,uint256)",
    ));
    let registry = ethers::types::H160(
        *manifest
            .contracts
            .medical_record_registry
            .address
            .as_bytes(),
    );
    let filter = Filter::new()
        .from_block(0u64)
        .address(registry)
        .topic0(signature);
    provider
        .get_logs(&filter)
        .await
        .expect("eth_getLogs")
        .into_iter()
        .map(|log| {
            (
                format!("{:#x}", log.topics[1]),
                format!("{:#x}", log.transaction_hash.expect("mined log")),
            )
        })
        .collect()
}

/// `(root, tx hash)` of every `BatchAnchored` event, each as `0x` hex.
pub async fn batch_anchored_events(
    anvil: &AnvilNode,
    manifest: &DeploymentManifest,
) -> Vec<(String, String)> {
    let registry = manifest
        .contracts
        .batch_anchor_registry
        .expect("the deployment has a batch registry");
    let filter = Filter::new()
        .from_block(0u64)
        .address(ethers::types::H160(*registry.address.as_bytes()))
        .topic0(H256(ethers::utils::keccak256(
            "BatchAnchored(bytes32,uint256)",
        )));
    anvil
        .provider()
        .expect("provider")
        .get_logs(&filter)
        .await
        .expect("eth_getLogs")
        .into_iter()
        .map(|log| {
            (
                format!("{:#x}", log.topics[1]),
                format!("{:#x}", log.transaction_hash.expect("mined log")),
            )
        })
        .collect()
}

/// Polls `condition` every 100 ms until it holds, up to `seconds`.
pub async fn wait_until<F, Fut>(seconds: u64, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..seconds * 10 {
        if condition().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {seconds} s");
}
