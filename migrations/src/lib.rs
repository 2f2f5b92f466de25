//! Database migrations of offline-sync, applied at start-up by both binaries and by
//! `offline_sync_storage::SeaStorage::connect`. One schema serves PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

mod m20261125_000001_init;
mod m20261126_000001_dead_letter_handled;
mod m20261201_000001_keys_and_audit;
mod m20261202_000001_outbox_unseen;
mod m20261202_000002_dead_letter_retries;
mod m20261202_000003_ship_refusals;
mod m20261203_000001_resync;
mod m20261204_000001_outbox_resent;
mod m20261206_000001_ships_session;

/// Every migration, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_init::Migration),
            Box::new(m20261126_000001_dead_letter_handled::Migration),
            Box::new(m20261201_000001_keys_and_audit::Migration),
            Box::new(m20261202_000001_outbox_unseen::Migration),
            Box::new(m20261202_000002_dead_letter_retries::Migration),
            Box::new(m20261202_000003_ship_refusals::Migration),
            Box::new(m20261203_000001_resync::Migration),
            Box::new(m20261204_000001_outbox_resent::Migration),
            Box::new(m20261206_000001_ships_session::Migration),
        ]
    }
}

pub use sea_orm_migration::MigratorTrait;
