//! Helpers for tests that need a fresh database of their own.

use sea_orm::{ConnectionTrait, Database};

use crate::error::Result;

/// The PostgreSQL server tests use: `OFFLINE_SYNC_TEST_PG` or `postgres://postgres@127.0.0.1:5432`.
pub fn postgres_server() -> String {
    std::env::var("OFFLINE_SYNC_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Creates a new, empty PostgreSQL database named `offline_sync_<label>_<unique>` on
/// [`postgres_server`] and returns its URL. Fails when the server cannot be reached: tests
/// that need PostgreSQL never pass by skipping.
pub async fn fresh_postgres(label: &str) -> Result<String> {
    let server = postgres_server();
    let admin = Database::connect(format!("{server}/postgres")).await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let label: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect();
    let name = format!("offline_sync_{label}_{}_{nanos}", std::process::id()).to_lowercase();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    admin.close().await?;
    Ok(format!("{server}/{name}"))
}

mod faulty;

pub use faulty::{Fault, FaultyStorage, StorageFaults};
