//! What only PostgreSQL has: a schema several accelerators migrate at once.

use coffer_accelerator::store::StoreError;
use coffer_accelerator::store::postgres::{PgRecords, SCHEMA_VERSION};

use super::pg::Scratch;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accelerators_starting_at_once_on_an_empty_database_migrate_it_once() {
    let db = Scratch::new().await;
    let starts = (0..6).map(|_| {
        let url = db.url();
        tokio::spawn(async move { PgRecords::connect(&url, 10).await.map(drop) })
    });
    for started in futures_util::future::join_all(starts).await {
        started.unwrap().expect("every accelerator starts");
    }
    let client = db.client().await;
    let versions: Vec<i64> = client
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "each migration applied and recorded once");
    // Starting again finds nothing to do.
    PgRecords::connect(&db.url(), 10).await.unwrap();
    let again: i64 = client.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(again, SCHEMA_VERSION);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = Scratch::new().await;
    PgRecords::connect(&db.url(), 10).await.unwrap();
    let newer = SCHEMA_VERSION + 1;
    db.client().await.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&newer]).await.unwrap();
    let refused = PgRecords::connect(&db.url(), 10).await.err().expect("refused");
    assert!(matches!(refused, StoreError::Backend(ref m) if m.contains("newer")), "{refused:?}");
}
