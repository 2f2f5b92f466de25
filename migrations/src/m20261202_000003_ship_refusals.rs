//! `ships.changes_refused` and `ships.last_refusal`: how many of a ship's changes the master
//! refused, and the seq and reason of the last one, so a refusal is visible onshore too.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, text_null};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's `up` takes `&SchemaManager` with an elided lifetime; naming it is refused.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            big_integer("changes_refused").default(0).to_owned(),
            text_null("last_refusal"),
        ] {
            manager
                .alter_table(Table::alter().table("ships").add_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
