use std::time::{Duration, Instant};

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use meditrustal_adapter_postgres::{
    ping, run_migrations, DatabaseError, PgOutboxStore, PgRecordStore, PgUserStore, Pool,
    PoolConfig, TestDatabase, MIGRATIONS,
};
use meditrustal_identity::{UserId, UserStore, UserStoreError};
use meditrustal_ledger::OutboxError;
use meditrustal_records::{ListQuery, RecordStore, RecordStoreError};
use secrecy::{ExposeSecret, SecretString};

use meditrustal_adapter_postgres::PgServer;

/// Maximum time a request may take while the database is down.
const FAIL_FAST: Duration = Duration::from_secs(5);
/// A request still running after this counts as hung.
const HANG: Duration = Duration::from_secs(15);

/// Result of one request, reduced to what the tests check.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Unavailable,
    OtherError(String),
    Hung,
}

#[derive(Clone)]
struct Stores {
    pool: Pool,
    users: PgUserStore,
    records: PgRecordStore,
    outbox: PgOutboxStore,
}

impl Stores {
    fn new(pool: Pool) -> Self {
        Self {
            users: PgUserStore::new(pool.clone()),
            records: PgRecordStore::new(pool.clone()),
            outbox: PgOutboxStore::new(pool.clone()),
            pool,
        }
    }

    /// Sends request number `i`, rotating over the stores and `ping`.
    async fn request(&self, i: usize) -> Outcome {
        let call = async {
            match i % 4 {
                0 => match self.users.find_by_id(UserId::random()).await {
                    Ok(_) => Outcome::Ok,
                    Err(UserStoreError::Unavailable(_)) => Outcome::Unavailable,
                    Err(other) => Outcome::OtherError(other.to_string()),
                },
                1 => {
                    let query = ListQuery {
                        patient_id: UserId::random(),
                        record_type: None,
                        within: None,
                        limit: 10,
                        after: None,
                    };
                    match self.records.list(&query).await {
                        Ok(_) => Outcome::Ok,
                        Err(RecordStoreError::Unavailable(_)) => Outcome::Unavailable,
                        Err(other) => Outcome::OtherError(other.to_string()),
                    }
                }
                2 => match self.outbox.pending_jobs().await {
                    Ok(_) => Outcome::Ok,
                    Err(OutboxError::Unavailable(_)) => Outcome::Unavailable,
                },
                _ => match ping(&self.pool).await {
                    Ok(()) => Outcome::Ok,
                    Err(DatabaseError::Unavailable(_)) => Outcome::Unavailable,
                    Err(other) => Outcome::OtherError(other.to_string()),
                },
            }
        };
        tokio::time::timeout(HANG, call)
            .await
            .unwrap_or(Outcome::Hung)
    }

    /// Sends `n` requests at once and returns each outcome with its duration.
    async fn burst(&self, n: usize) -> Vec<(Outcome, Duration)> {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let stores = self.clone();
            tasks.spawn(async move {
                let started = Instant::now();
                let outcome = stores.request(i).await;
                (outcome, started.elapsed())
            });
        }
        tasks.join_all().await
    }
}

fn small_pool(url: String) -> Pool {
    let mut config = PoolConfig::new(SecretString::from(url));
    config.max_size = 4;
    Pool::new(&config).unwrap()
}

fn count(outcomes: &[(Outcome, Duration)], expected: &Outcome) -> usize {
    outcomes
        .iter()
        .filter(|(outcome, _)| outcome == expected)
        .count()
}

fn slowest(outcomes: &[(Outcome, Duration)]) -> Duration {
    outcomes
        .iter()
        .map(|(_, elapsed)| *elapsed)
        .max()
        .unwrap_or_default()
}

#[tokio::test]
async fn ping_reaches_the_database() {
    let db = TestDatabase::create().await.unwrap();

    assert_eq!(ping(db.pool()).await, Ok(()));
}

#[tokio::test]
async fn migrations_already_applied_report_nothing() {
    let db = TestDatabase::create().await.unwrap();

    let applied = run_migrations(db.url()).await.unwrap();

    assert_eq!(applied, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_of_four_answers_fifty_concurrent_requests() {
    let db = TestDatabase::create().await.unwrap();
    let stores = Stores::new(small_pool(db.url().expose_secret().to_owned()));

    let outcomes = stores.burst(50).await;

    assert_eq!(count(&outcomes, &Outcome::Ok), 50, "{outcomes:?}");
}

#[tokio::test]
async fn unreachable_database_fails_fast() {
    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stores = Stores::new(small_pool(format!(
        "postgres://postgres@127.0.0.1:{port}/none"
    )));

    let outcomes = stores.burst(50).await;

    assert_eq!(count(&outcomes, &Outcome::Unavailable), 50, "{outcomes:?}");
    assert!(
        slowest(&outcomes) < FAIL_FAST,
        "slowest request took {:?}",
        slowest(&outcomes)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_database_fails_fast_and_recovers() {
    let server = PgServer::start();
    let url = SecretString::from(server.url());
    let applied = run_migrations(&url).await.unwrap();
    let embedded = MigrationSource::<Pg>::migrations(&MIGRATIONS).unwrap();
    assert_eq!(applied.len(), embedded.len(), "{applied:?}");
    let stores = Stores::new(small_pool(server.url()));
    let warm = stores.burst(50).await;
    assert_eq!(count(&warm, &Outcome::Ok), 50, "{warm:?}");

    // While the server is down every request fails within FAIL_FAST.
    server.stop("fast");
    let down = stores.burst(50).await;
    assert_eq!(count(&down, &Outcome::Unavailable), 50, "{down:?}");
    assert!(
        slowest(&down) < FAIL_FAST,
        "slowest request took {:?}",
        slowest(&down)
    );

    // The first request after a restart succeeds.
    server.start_again();
    assert_eq!(stores.request(0).await, Outcome::Ok);

    // Idle connections broken by a crash are replaced, not handed out.
    let refill = stores.burst(50).await;
    assert_eq!(count(&refill, &Outcome::Ok), 50, "{refill:?}");
    server.stop("immediate");
    server.start_again();
    assert_eq!(stores.request(3).await, Outcome::Ok);
    assert_eq!(stores.request(1).await, Outcome::Ok);
}
