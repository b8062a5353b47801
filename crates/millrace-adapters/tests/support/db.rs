//! Test databases shared by the SQL test files: a SQLite file in a temp dir, the throwaway
//! PostgreSQL server `scripts/test.sh` starts, and table names no other run uses.
#![allow(dead_code)] // each test file uses a subset

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Pool, Postgres, Sqlite};

/// A name no other test (or earlier run against the same database) uses.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) async fn sqlite() -> (tempfile::TempDir, Pool<Sqlite>) {
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("test.db"))
        .create_if_missing(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    (dir, pool)
}

pub(crate) async fn postgres() -> Option<Pool<Postgres>> {
    let url = match std::env::var("MILLRACE_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) if std::env::var("MILLRACE_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!(
                "SKIPPED: PostgreSQL test (MILLRACE_SKIP_POSTGRES=1 and no MILLRACE_TEST_POSTGRES_URL)"
            );
            return None;
        }
        Err(_) => panic!(
            "MILLRACE_TEST_POSTGRES_URL is not set: start a throwaway server with \
             `source scripts/services.sh && start_postgres` (scripts/test.sh does this), \
             or set MILLRACE_SKIP_POSTGRES=1 to skip the PostgreSQL tests on purpose"
        ),
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to MILLRACE_TEST_POSTGRES_URL={url}: {e}"));
    Some(pool)
}
