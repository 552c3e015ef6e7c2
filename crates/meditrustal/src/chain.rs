//! `meditrustal chain reconcile`: one catch-up pass of the chain watcher,
//! and the list of chain events that match no outbox job.

use std::sync::Arc;

use anyhow::Context;
use meditrustal_adapter_ethers::EthersLedger;
use meditrustal_adapter_postgres::PgWatchStore;
use meditrustal_ledger::{UnmatchedEvent, WatchReport, WatchStore};

use crate::app;
use crate::config::Settings;

/// Totals of a reconciliation and the unmatched events on record.
#[derive(Debug, Default)]
pub struct Reconciliation {
    /// First and last block read, if any was read.
    pub blocks: Option<(u64, u64)>,
    /// The stored progress named a block that the chain no longer has.
    pub rewound: bool,
    /// Events read.
    pub events: usize,
    /// Jobs whose entry the chain holds where the database says.
    pub confirmed: usize,
    /// Ids of the jobs reopened because the chain lacks their entry.
    pub reanchored: Vec<i64>,
    /// Ids of the jobs moved to the transaction that holds their entry.
    pub moved: Vec<i64>,
    /// Every recorded event that matches no job, oldest block first.
    pub unmatched: Vec<UnmatchedEvent>,
}

impl Reconciliation {
    fn add(&mut self, round: WatchReport) {
        if let (Some(from), Some(to)) = (round.from_block, round.to_block) {
            let first = self.blocks.map_or(from, |(first, _)| first.min(from));
            self.blocks = Some((first, to));
        }
        self.rewound |= round.rewound;
        self.events += round.events;
        self.confirmed += round.confirmed;
        self.reanchored.extend(round.reanchored);
        self.moved.extend(round.moved);
    }
}

/// Runs watcher rounds until one reads no new block, then lists the
/// unmatched events. Reopened jobs are sent by the serving instance that
/// holds the signer lock; this command sends nothing.
pub async fn reconcile(settings: &Settings) -> anyhow::Result<Reconciliation> {
    let chain_config = app::ethers_config_with_key(settings, crate::audit::read_only_key()?);
    let manifest = app::checked_manifest(settings, &chain_config).await?;
    let ledger =
        Arc::new(EthersLedger::connect(&chain_config, manifest).context("invalid chain settings")?);
    let pool = app::pool(settings)?;
    let watcher = app::watcher(settings, ledger.clone(), pool.clone());

    let mut total = Reconciliation::default();
    loop {
        let round = watcher.run_once().await.context("reconciliation failed")?;
        let read_blocks = round.to_block.is_some();
        total.add(round);
        if !read_blocks {
            break;
        }
    }
    let name = app::watcher_name(ledger.manifest());
    total.unmatched = PgWatchStore::new(pool.clone(), name)
        .unmatched_events()
        .await
        .context("cannot list unmatched events")?;
    pool.close();
    Ok(total)
}

/// Describes `report` as `chain reconcile` prints it: a summary line, then
/// one line per unmatched event.
pub fn describe(report: &Reconciliation) -> String {
    let blocks = match report.blocks {
        Some((from, to)) => format!("blocks {from} to {to} read"),
        None => "no new confirmed block".to_owned(),
    };
    let ids = |ids: &[i64]| {
        ids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = vec![format!(
        "chain reconciled: {blocks}{}; {} events, {} jobs confirmed, {} re-anchored [{}], \
         {} moved [{}], {} unmatched events",
        if report.rewound {
            " after a rewind"
        } else {
            ""
        },
        report.events,
        report.confirmed,
        report.reanchored.len(),
        ids(&report.reanchored),
        report.moved.len(),
        ids(&report.moved),
        report.unmatched.len(),
    )];
    for unmatched in &report.unmatched {
        let event = &unmatched.event;
        lines.push(format!(
            "unmatched {} {} tx {} block {} log {} first seen {}",
            event.entry.kind,
            event.entry.key,
            event.tx_hash,
            event.block.number,
            event.log_index,
            unmatched.seen_at.to_rfc3339(),
        ));
    }
    lines.join("\n")
}
