//! Database migrations of offline-sync, applied at start-up by both binaries and by
//! `offline_sync_storage::SeaStorage::connect`. One schema serves PostgreSQL and SQLite.

use sea_orm_migration::prelude::*;

/// What a migration does, in order.
pub(crate) enum Step {
    /// Creates a table unless it exists.
    Table(TableCreateStatement),
    /// Creates an index unless it exists.
    Index(IndexCreateStatement),
    /// Adds a column to a table: one a statement, as SQLite adds them.
    Column(&'static str, ColumnDef),
    /// Changes rows already there.
    Rows(UpdateStatement),
    /// Drops index `.0` of table `.1`.
    DropIndex(&'static str, &'static str),
    /// A statement both databases read alike, for what the steps above cannot say.
    Sql(&'static str),
    /// A statement for PostgreSQL alone (a storage parameter SQLite has no notion of).
    Postgres(&'static str),
    /// A statement for SQLite alone, where the two databases say a thing differently.
    Sqlite(&'static str),
}

/// Runs `steps` in order.
async fn run(manager: &SchemaManager<'_>, steps: Vec<Step>) -> Result<(), DbErr> {
    for step in steps {
        match step {
            Step::Table(t) => manager.create_table(t).await?,
            Step::Index(i) => manager.create_index(i).await?,
            Step::Column(table, mut column) => {
                let alter = Table::alter().table(table).add_column(&mut column).to_owned();
                manager.alter_table(alter).await?;
            }
            Step::Rows(u) => manager.exec_stmt(u).await?,
            Step::DropIndex(name, table) => {
                manager
                    .drop_index(Index::drop().name(name).table(table).if_exists().to_owned())
                    .await?
            }
            Step::Sql(sql) => {
                manager.get_connection().execute_unprepared(sql).await?;
            }
            Step::Postgres(sql) => {
                if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
                    manager.get_connection().execute_unprepared(sql).await?;
                }
            }
            Step::Sqlite(sql) => {
                if manager.get_database_backend() == sea_orm::DbBackend::Sqlite {
                    manager.get_connection().execute_unprepared(sql).await?;
                }
            }
        }
    }
    Ok(())
}

/// Table `name` with `columns`, its primary key over `key` (empty: a column holds it).
pub(crate) fn table(name: &'static str, columns: Vec<ColumnDef>, key: &[&'static str]) -> Step {
    let mut t = Table::create().table(name).if_not_exists().to_owned();
    for mut c in columns {
        t.col(&mut c);
    }
    if !key.is_empty() {
        let mut pk = Index::create();
        for k in key {
            pk.col(*k);
        }
        t.primary_key(&mut pk);
    }
    Step::Table(t)
}

/// Index `name` over `columns` of `table`.
pub(crate) fn index(name: &'static str, table: &'static str, columns: &[&'static str]) -> Step {
    let mut i = Index::create().name(name).table(table).if_not_exists().to_owned();
    for c in columns {
        i.col(*c);
    }
    Step::Index(i)
}

/// The name a migration is recorded under: its module's (and file's) name, as sea-orm's
/// `DeriveMigrationName` gives it.
fn stem(module_path: &'static str) -> &'static str {
    module_path.rsplit("::").next().unwrap_or(module_path)
}

/// A migration module's `Migration`, which runs the steps given, in order.
macro_rules! migration {
    ($($step:expr),* $(,)?) => {
        pub(crate) struct Migration;

        impl MigrationName for Migration {
            fn name(&self) -> &str {
                crate::stem(module_path!())
            }
        }

        // The trait's `up` takes `&SchemaManager` with an elided lifetime; naming it is refused.
        #[allow(elided_lifetimes_in_paths)]
        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                crate::run(manager, vec![$($step),*]).await
            }
        }
    };
}
pub(crate) use migration;

mod m20261125_000001_init;
mod m20261126_000001_dead_letter_handled;
mod m20261201_000001_keys_and_audit;
mod m20261202_000001_outbox_unseen;
mod m20261202_000002_dead_letter_retries;
mod m20261202_000003_ship_refusals;
mod m20261203_000001_resync;
mod m20261204_000001_outbox_resent;
mod m20261206_000001_ships_session;
mod m20261207_000001_publish_position;
mod m20261207_000002_documents_in_place;
mod m20261207_000003_documents_created_at;
mod m20261207_000004_feed;

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
            Box::new(m20261207_000001_publish_position::Migration),
            Box::new(m20261207_000002_documents_in_place::Migration),
            Box::new(m20261207_000003_documents_created_at::Migration),
            Box::new(m20261207_000004_feed::Migration),
        ]
    }
}

pub use sea_orm_migration::MigratorTrait;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_keep_the_names_they_were_recorded_under() {
        let names: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "m20261125_000001_init",
                "m20261126_000001_dead_letter_handled",
                "m20261201_000001_keys_and_audit",
                "m20261202_000001_outbox_unseen",
                "m20261202_000002_dead_letter_retries",
                "m20261202_000003_ship_refusals",
                "m20261203_000001_resync",
                "m20261204_000001_outbox_resent",
                "m20261206_000001_ships_session",
                "m20261207_000001_publish_position",
                "m20261207_000002_documents_in_place",
                "m20261207_000003_documents_created_at",
                "m20261207_000004_feed",
            ]
        );
    }
}
