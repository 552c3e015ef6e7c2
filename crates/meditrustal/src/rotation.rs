//! `meditrustal keys rotate` and `meditrustal keys retire`: move every
//! wrapped data key to the current master key, then retire the old key.
//!
//! A run re-wraps data keys in batches of one transaction each and
//! selects only rows that the current key does not wrap yet, so an
//! interrupted run loses at most its open batch, and the next run
//! continues where it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use meditrustal_adapter_postgres::{
    retire_master_key, rewrap_batch, wrapped_key_counts, Pool, SealedTable, WrappedKeyCount,
};
use meditrustal_crypto::{KeyId, KeyProvider, MasterKeyring};

use crate::app;
use crate::progress::Progress;

/// Limits of one rotation run.
#[derive(Clone, Copy, Debug)]
pub struct RotateOptions {
    /// Data keys re-wrapped per transaction.
    pub batch_size: u32,
    /// Stop after this many data keys; `None` re-wraps all of them.
    pub max_keys: Option<u64>,
}

/// What a rotation run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationReport {
    /// The master key that now wraps the re-wrapped data keys.
    pub target: KeyId,
    /// Data keys re-wrapped, per table, every table listed.
    pub rewrapped: BTreeMap<SealedTable, u64>,
    /// Data keys still wrapped under other master keys after the run.
    pub remaining: u64,
}

impl RotationReport {
    /// Describes the run in one line, as `keys rotate` prints it.
    pub fn summary(&self) -> String {
        let total: u64 = self.rewrapped.values().sum();
        let tables = self
            .rewrapped
            .iter()
            .map(|(table, count)| format!("{} {count}", table.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let rest = if self.remaining == 0 {
            "no data key is wrapped under another master key".to_owned()
        } else {
            format!(
                "{} data keys are still wrapped under other master keys; run it again to continue",
                self.remaining
            )
        };
        format!(
            "keys rotate: re-wrapped {total} data keys under master key {} ({tables}); {rest}",
            self.target
        )
    }
}

/// Re-wraps every data key that the current key of `keyring` does not
/// wrap, within `options`. Errors: a configured key that does not match
/// the database, data wrapped under a key that is not configured, a row
/// that does not unwrap (named in the error), the database.
pub async fn rotate(
    pool: &Pool,
    keyring: Arc<MasterKeyring>,
    options: RotateOptions,
    progress: &mut Progress,
) -> anyhow::Result<RotationReport> {
    app::check_master_keys(pool, &keyring).await?;
    let target = keyring.current().id().clone();
    let pending = pending_keys(pool, keyring.as_ref()).await?;
    let budget = options.max_keys.unwrap_or(u64::MAX);
    progress.set_total(pending.min(budget));

    let keys: Arc<dyn KeyProvider> = keyring;
    let mut rewrapped: BTreeMap<SealedTable, u64> =
        SealedTable::ALL.iter().map(|table| (*table, 0)).collect();
    let mut done: u64 = 0;
    for table in SealedTable::ALL {
        let mut after = None;
        while done < budget {
            let limit = u64::from(options.batch_size.max(1)).min(budget - done);
            let batch = rewrap_batch(
                pool,
                table,
                keys.clone(),
                after,
                u32::try_from(limit).unwrap_or(u32::MAX),
            )
            .await
            .context("key rotation stopped; the batches before this one are committed")?;
            let count = batch.rewrapped as u64;
            done += count;
            *rewrapped.entry(table).or_default() += count;
            progress.advance(count);
            match batch.last_id {
                Some(last) => after = Some(last),
                None => break,
            }
        }
    }

    let remaining = pending_keys(pool, keys.as_ref()).await?;
    Ok(RotationReport {
        target,
        rewrapped,
        remaining,
    })
}

/// Counts the data keys wrapped under other keys than the current one,
/// failing when one of those keys is not configured.
async fn pending_keys(pool: &Pool, keys: &dyn KeyProvider) -> anyhow::Result<u64> {
    let counts = wrapped_key_counts(pool).await?;
    let current = keys.current().id().as_str();
    let mut pending = 0;
    for WrappedKeyCount {
        table,
        key_id,
        count,
    } in counts.into_iter().filter(|count| count.key_id != current)
    {
        if keys.by_id(&KeyId::new(key_id.clone())).is_none() {
            bail!(
                "{count} data keys in {} are wrapped under master key {key_id}, which is not \
                 configured; add it to MEDITRUSTAL__CRYPTO__PREVIOUS_MASTER_KEYS as \
                 {key_id}:<64 hex digits>",
                table.name()
            );
        }
        pending += count;
    }
    Ok(pending)
}

/// Retires master key `key_id` in the database once no data key needs it.
/// Errors: the key is the configured current key, is unknown, or still
/// wraps data keys (the message says how many, per table).
pub async fn retire(pool: &Pool, current: &KeyId, key_id: &str) -> anyhow::Result<()> {
    if current.as_str() == key_id {
        bail!(
            "master key {key_id} is the current key (crypto.master_key_id); make another key \
             current and run `meditrustal keys rotate` first"
        );
    }
    retire_master_key(pool, key_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_tables_and_remaining_keys() {
        let report = RotationReport {
            target: KeyId::new("mk2"),
            rewrapped: BTreeMap::from([
                (SealedTable::MedicalRecords, 5),
                (SealedTable::UserKeys, 2),
                (SealedTable::TotpCredentials, 0),
            ]),
            remaining: 3,
        };

        assert_eq!(
            report.summary(),
            "keys rotate: re-wrapped 7 data keys under master key mk2 (medical_records 5, \
             user_keys 2, totp_credentials 0); 3 data keys are still wrapped under other \
             master keys; run it again to continue"
        );
    }
}
