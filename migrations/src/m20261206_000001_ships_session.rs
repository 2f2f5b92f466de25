//! `ships.online_since_ms`: when the ship was heard from after a silence longer than the
//! offline threshold (the start of its current stay online), and `ships.resync`: where its
//! resync from the master's state stands, as its last heartbeat said. `broadcasts` indexed by
//! CSN and by time: the fleet view reads when each ship's first missing commit was made, and
//! the admin page counts commits per minute. `conflicts.field_bases`: the CSN the ship had
//! taken in for each held field that differs from the conflict's base version, so the admin
//! page shows each field's value at the ship's own base.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, text_null};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's `up` takes `&SchemaManager` with an elided lifetime; naming it is refused.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table("ships")
                    .add_column(big_integer_null("online_since_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("ships")
                    .add_column(text_null("resync"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("conflicts")
                    .add_column(text_null("field_bases"))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("broadcasts_by_csn", "csn"),
            ("broadcasts_by_time", "created_at_ms"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("broadcasts")
                        .col(col)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
