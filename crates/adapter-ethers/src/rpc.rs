//! JSON-RPC access with a timeout on every call, and the one place that
//! assigns nonces to the registrar's transactions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ethers::contract::ContractError;
use ethers::providers::{Http, Middleware, MiddlewareError, Provider, ProviderError};
use ethers::signers::{LocalWallet, Signer};
use ethers::types::transaction::eip2718::TypedTransaction;
use ethers::types::{
    BlockNumber, Bytes, Eip1559TransactionRequest, Filter, Log, Transaction, TransactionReceipt,
    H160, H256, U256,
};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::{ConfigError, EthersConfig};

/// The provider type every binding in this crate runs on.
pub(crate) type HttpProvider = Provider<Http>;

/// A failed chain call, before it is mapped to a port error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainError {
    /// The node could not be reached, did not respond in time, or returned
    /// something this crate cannot decode.
    Unavailable(String),
    /// The node responded with a JSON-RPC error that is not a revert, such
    /// as "nonce too low" or "insufficient funds".
    Node(String),
    /// The EVM reverted; the revert data, empty when the node sent none.
    Reverted(Bytes),
}

impl ChainError {
    /// Describes the error for a port error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Unavailable(message) | Self::Node(message) => message.clone(),
            Self::Reverted(data) => format!("reverted with data {data}"),
        }
    }
}

/// Maps a provider error: revert data becomes [`ChainError::Reverted`],
/// other JSON-RPC errors [`ChainError::Node`], the rest
/// [`ChainError::Unavailable`].
fn from_provider_error(method: &str, error: &ProviderError) -> ChainError {
    match error.as_error_response() {
        Some(response) => match response.as_revert_data() {
            Some(data) => ChainError::Reverted(data),
            None => ChainError::Node(format!("{method} failed: {}", response.message)),
        },
        None => ChainError::Unavailable(format!(
            "{method} failed: {}",
            redact_urls(&error.to_string())
        )),
    }
}

/// Replaces every `http://` or `https://` URL in an error message with
/// `<rpc url>`: reqwest errors name the endpoint, and hosted endpoints
/// often carry an API key in their path.
pub(crate) fn redact_urls(message: &str) -> String {
    let mut redacted = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = [rest.find("http://"), rest.find("https://")]
        .into_iter()
        .flatten()
        .min()
    {
        redacted.push_str(&rest[..start]);
        redacted.push_str("<rpc url>");
        let url = &rest[start..];
        let end = url
            .find(|c: char| c.is_whitespace() || c == ')')
            .unwrap_or(url.len());
        rest = &url[end..];
    }
    redacted.push_str(rest);
    redacted
}

/// Converts the error types of ethers calls into [`ChainError`].
pub(crate) trait IntoChainError {
    fn into_chain_error(self, method: &str) -> ChainError;
}

impl IntoChainError for ProviderError {
    fn into_chain_error(self, method: &str) -> ChainError {
        from_provider_error(method, &self)
    }
}

impl IntoChainError for ContractError<HttpProvider> {
    fn into_chain_error(self, method: &str) -> ChainError {
        match self {
            ContractError::Revert(data) => ChainError::Reverted(data),
            ContractError::MiddlewareError { e } | ContractError::ProviderError { e } => {
                from_provider_error(method, &e)
            }
            other => ChainError::Unavailable(format!(
                "{method} failed: {}",
                redact_urls(&other.to_string())
            )),
        }
    }
}

/// The registrar's connection to the node: signs and sends its
/// transactions, and owns its nonce.
pub(crate) struct ChainClient {
    provider: Arc<HttpProvider>,
    wallet: LocalWallet,
    rpc_timeout: Duration,
    poll_interval: Duration,
    /// Next nonce to use, or `None` to read it from the node
    /// (`eth_getTransactionCount` with tag `pending`) before the next send.
    /// The lock is held from reading the nonce until the node accepted or
    /// rejected the transaction, so concurrent sends get consecutive nonces
    /// and no nonce is taken without being sent.
    next_nonce: Mutex<Option<U256>>,
}

/// Gas limit margin over `eth_estimateGas`, in percent, because state may
/// change between the estimate and mining.
const GAS_MARGIN_PERCENT: u64 = 20;

/// Raise of both fees of a replacement transaction over the original's, in
/// percent. geth and anvil accept a replacement only when both fees rise by
/// at least 10 %.
const REPLACEMENT_BUMP_PERCENT: u64 = 25;

impl ChainClient {
    /// Builds a client for `chain_id` from the configuration. Makes no call.
    pub(crate) fn connect(config: &EthersConfig, chain_id: u64) -> Result<Self, ConfigError> {
        let wallet = config.registrar_wallet()?.with_chain_id(chain_id);
        let provider = Provider::<Http>::try_from(config.rpc_url.as_str())
            .map_err(|error| ConfigError::InvalidRpcUrl(error.to_string()))?
            .interval(config.poll_interval);

        Ok(Self {
            provider: Arc::new(provider),
            wallet,
            rpc_timeout: config.rpc_timeout,
            poll_interval: config.poll_interval,
            next_nonce: Mutex::new(None),
        })
    }

    pub(crate) fn provider(&self) -> &Arc<HttpProvider> {
        &self.provider
    }

    pub(crate) fn address(&self) -> H160 {
        self.wallet.address()
    }

    pub(crate) fn chain_id(&self) -> u64 {
        self.wallet.chain_id()
    }

    /// Awaits one JSON-RPC call, bounded by the configured RPC timeout.
    pub(crate) async fn rpc<T, E: IntoChainError>(
        &self,
        method: &str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ChainError> {
        match tokio::time::timeout(self.rpc_timeout, call).await {
            Ok(result) => result.map_err(|error| error.into_chain_error(method)),
            Err(_) => Err(ChainError::Unavailable(format!(
                "{method} timed out after {} ms",
                self.rpc_timeout.as_millis()
            ))),
        }
    }

    /// Reads the chain id the node reports.
    pub(crate) async fn node_chain_id(&self) -> Result<u64, ChainError> {
        let chain_id = self.rpc("eth_chainId", self.provider.get_chainid()).await?;
        Ok(chain_id.low_u64())
    }

    /// Reads the balance of `address` in the latest block, in wei.
    pub(crate) async fn balance(&self, address: H160) -> Result<U256, ChainError> {
        self.rpc("eth_getBalance", self.provider.get_balance(address, None))
            .await
    }

    /// Reads the runtime code at `address` in the latest block.
    pub(crate) async fn code_at(&self, address: H160) -> Result<Bytes, ChainError> {
        self.rpc("eth_getCode", self.provider.get_code(address, None))
            .await
    }

    /// Estimates the gas of a call from the registrar and adds
    /// [`GAS_MARGIN_PERCENT`]. A revert comes back as
    /// [`ChainError::Reverted`].
    pub(crate) async fn estimate_gas(
        &self,
        to: Option<H160>,
        data: &Bytes,
    ) -> Result<U256, ChainError> {
        let request = TypedTransaction::Eip1559(self.request(to, data.clone()));
        // Pinned to the latest block, like `simulate`: anvil estimates
        // against the pending block by default, where a pooled duplicate
        // reverts although the latest state has no entry to resolve it to.
        let latest = Some(BlockNumber::Latest.into());
        let estimate = self
            .rpc(
                "eth_estimateGas",
                self.provider.estimate_gas(&request, latest),
            )
            .await?;
        Ok(estimate + estimate * GAS_MARGIN_PERCENT / 100)
    }

    /// Runs a call from the registrar with `eth_call` against the latest
    /// block. A revert comes back as [`ChainError::Reverted`] with its
    /// data, which a mined transaction with preset gas would not report.
    pub(crate) async fn simulate(&self, to: H160, data: &Bytes) -> Result<(), ChainError> {
        let request = TypedTransaction::Eip1559(self.request(Some(to), data.clone()));
        let latest = Some(BlockNumber::Latest.into());
        self.rpc("eth_call", self.provider.call(&request, latest))
            .await?;
        Ok(())
    }

    /// Signs and sends a transaction from the registrar and returns its
    /// hash. A nonce that the node rejects as used (another sender shares
    /// the key, or a deploy ran in another process) is read again from the
    /// node and the send is tried once more.
    pub(crate) async fn send(
        &self,
        to: Option<H160>,
        data: Bytes,
        gas: U256,
    ) -> Result<H256, ChainError> {
        let (max_fee, priority_fee) = self
            .rpc("eth_feeHistory", self.provider.estimate_eip1559_fees(None))
            .await?;
        let request = self
            .request(to, data)
            .gas(gas)
            .max_fee_per_gas(max_fee)
            .max_priority_fee_per_gas(priority_fee);

        match self.send_with_next_nonce(request.clone()).await {
            Err(ChainError::Node(message)) if message.contains("nonce") => {
                tracing::debug!(%message, "nonce rejected; sending again with the node's nonce");
                self.send_with_next_nonce(request).await
            }
            result => result,
        }
    }

    async fn send_with_next_nonce(
        &self,
        request: Eip1559TransactionRequest,
    ) -> Result<H256, ChainError> {
        let mut next_nonce = self.next_nonce.lock().await;
        let nonce = match *next_nonce {
            Some(nonce) => nonce,
            None => self.pending_nonce().await?,
        };

        let transaction = TypedTransaction::Eip1559(request.nonce(nonce));
        let signature = self
            .wallet
            .sign_transaction(&transaction)
            .await
            .map_err(|error| ChainError::Unavailable(format!("signing failed: {error}")))?;
        let raw = transaction.rlp_signed(&signature);

        match self
            .rpc(
                "eth_sendRawTransaction",
                self.provider.send_raw_transaction(raw),
            )
            .await
        {
            Ok(pending) => {
                *next_nonce = Some(nonce + 1);
                tracing::debug!(
                    tx.hash = ?pending.tx_hash(),
                    tx.nonce = %nonce,
                    "transaction sent"
                );
                Ok(pending.tx_hash())
            }
            Err(error) => {
                // Whether the node kept the transaction is unknown after a
                // timeout, so the next send reads the nonce from the node.
                *next_nonce = None;
                Err(error)
            }
        }
    }

    async fn pending_nonce(&self) -> Result<U256, ChainError> {
        let count = self
            .provider
            .get_transaction_count(self.address(), Some(BlockNumber::Pending.into()));
        self.rpc("eth_getTransactionCount", count).await
    }

    /// Reads the registrar's transaction count including the node's
    /// executable pending transactions, which is the next usable nonce.
    pub(crate) async fn pending_transaction_count(&self) -> Result<U256, ChainError> {
        self.pending_nonce().await
    }

    /// Clears the cached nonce, so the next send reads it from the node.
    pub(crate) async fn reset_nonce(&self) {
        *self.next_nonce.lock().await = None;
    }

    /// Compares the cached nonce with the node's pending transaction count
    /// and clears it when they differ: lower means transactions this
    /// client sent are gone (the chain was reset), higher means another
    /// process sent with the same key.
    pub(crate) async fn reconcile_nonce(&self) -> Result<(), ChainError> {
        let mut next_nonce = self.next_nonce.lock().await;
        let Some(cached) = *next_nonce else {
            return Ok(());
        };

        let pending = self.pending_nonce().await?;
        if pending != cached {
            tracing::debug!(
                tx.nonce.cached = %cached,
                tx.nonce.pending = %pending,
                "cached nonce differs from node; forgetting it"
            );
            *next_nonce = None;
        }
        Ok(())
    }

    /// Reads a receipt, `None` while the transaction is not mined.
    pub(crate) async fn receipt(
        &self,
        tx_hash: H256,
    ) -> Result<Option<TransactionReceipt>, ChainError> {
        self.rpc(
            "eth_getTransactionReceipt",
            self.provider.get_transaction_receipt(tx_hash),
        )
        .await
    }

    /// Polls for a receipt every poll interval until `timeout` has passed.
    /// Returns `Ok(None)` when the transaction is not mined by then.
    pub(crate) async fn wait_for_receipt(
        &self,
        tx_hash: H256,
        timeout: Duration,
    ) -> Result<Option<TransactionReceipt>, ChainError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(receipt) = self.receipt(tx_hash).await? {
                return Ok(Some(receipt));
            }
            if Instant::now() + self.poll_interval > deadline {
                return Ok(None);
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Returns whether the node has the transaction, mined or pending.
    pub(crate) async fn transaction_known(&self, tx_hash: H256) -> Result<bool, ChainError> {
        let transaction = self
            .rpc(
                "eth_getTransactionByHash",
                self.provider.get_transaction(tx_hash),
            )
            .await?;
        Ok(transaction.is_some())
    }

    /// Reads a transaction by hash, `None` when the node does not know it.
    pub(crate) async fn transaction(
        &self,
        tx_hash: H256,
    ) -> Result<Option<Transaction>, ChainError> {
        self.rpc(
            "eth_getTransactionByHash",
            self.provider.get_transaction(tx_hash),
        )
        .await
    }

    /// Signs and sends `original` again with its nonce, recipient, data and
    /// gas, and fees raised to the larger of the current estimate and the
    /// original fee plus [`REPLACEMENT_BUMP_PERCENT`]. Returns the new hash.
    /// Takes no nonce lock, because it reuses a nonce already spent.
    pub(crate) async fn replace(&self, original: &Transaction) -> Result<H256, ChainError> {
        let (estimated_max, estimated_priority) = self
            .rpc("eth_feeHistory", self.provider.estimate_eip1559_fees(None))
            .await?;
        let bump = |fee: U256| fee + fee * REPLACEMENT_BUMP_PERCENT / 100 + 1;
        let old_priority = original.max_priority_fee_per_gas.unwrap_or_default();
        let old_max = original
            .max_fee_per_gas
            .or(original.gas_price)
            .unwrap_or_default();
        let priority_fee = bump(old_priority).max(estimated_priority);
        let max_fee = bump(old_max).max(estimated_max).max(priority_fee);

        let mut request = Eip1559TransactionRequest::new()
            .from(self.address())
            .data(original.input.clone())
            .chain_id(self.chain_id())
            .nonce(original.nonce)
            .gas(original.gas)
            .value(original.value)
            .max_fee_per_gas(max_fee)
            .max_priority_fee_per_gas(priority_fee);
        if let Some(to) = original.to {
            request = request.to(to);
        }
        let transaction = TypedTransaction::Eip1559(request);
        let signature = self
            .wallet
            .sign_transaction(&transaction)
            .await
            .map_err(|error| ChainError::Unavailable(format!("signing failed: {error}")))?;
        let pending = self
            .rpc(
                "eth_sendRawTransaction",
                self.provider
                    .send_raw_transaction(transaction.rlp_signed(&signature)),
            )
            .await?;
        tracing::debug!(
            tx.hash = ?pending.tx_hash(),
            tx.replaced = ?original.hash,
            tx.nonce = %original.nonce,
            "replacement transaction sent"
        );
        Ok(pending.tx_hash())
    }

    /// Reads the hash of block `number`, `None` when the chain has no such
    /// block.
    pub(crate) async fn block_hash(&self, number: u64) -> Result<Option<H256>, ChainError> {
        let block = self
            .rpc("eth_getBlockByNumber", self.provider.get_block(number))
            .await?;
        Ok(block.and_then(|block| block.hash))
    }

    /// Reads the logs that `filter` selects.
    pub(crate) async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, ChainError> {
        self.rpc("eth_getLogs", self.provider.get_logs(filter))
            .await
    }

    pub(crate) async fn block_number(&self) -> Result<u64, ChainError> {
        let number = self
            .rpc("eth_blockNumber", self.provider.get_block_number())
            .await?;
        Ok(number.as_u64())
    }

    fn request(&self, to: Option<H160>, data: Bytes) -> Eip1559TransactionRequest {
        let request = Eip1559TransactionRequest::new()
            .from(self.address())
            .data(data)
            .chain_id(self.chain_id());
        match to {
            Some(address) => request.to(address),
            None => request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_urls_hides_every_endpoint() {
        let message = "error sending request for url (http://127.0.0.1:8746/): connect failed; \
                       retried https://node.example/v3/secret-key and http://a";
        assert_eq!(
            redact_urls(message),
            "error sending request for url (<rpc url>): connect failed; \
                       retried <rpc url> and <rpc url>"
        );
    }

    #[test]
    fn unreachable_node_error_names_no_url() {
        let error = ProviderError::CustomError(
            "error sending request for url (http://127.0.0.1:8746/): tcp connect error".into(),
        );
        match from_provider_error("eth_chainId", &error) {
            ChainError::Unavailable(message) => assert_eq!(
                message,
                "eth_chainId failed: custom error: error sending request for url (<rpc url>): tcp connect error"
            ),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
