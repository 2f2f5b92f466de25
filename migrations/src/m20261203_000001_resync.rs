//! `resync`: a replica's resync from the master's state, one row while it runs and after it
//! ended (the last one), so a resync cut by a lost link or a restart continues from the last
//! page received instead of from zero.
//!
//! `ship_seqs`: the hybrid logical time and the document of each change the master applied (or
//! refused) from a ship, by ship and seq, kept until the ship says it has the answers; a ship resyncing after
//! its answers were lost tells by it its changes the master saw from ones written under the
//! same seqs after its database was put back from a backup.
//!
//! `ships.decommissioned_at_ms`: when an operator decommissioned the ship (null: it is in
//! service); a decommissioned ship no longer holds the collection of tombstones back.
//!
//! Phases: `requested` (nothing fetched yet), `fetching` (the point it continues from, `at_csn`
//! and `at_offset`, is fixed and pages are being applied; `cursor` is the last document
//! received), `done`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, integer, integer_null, string_len, string_len_null, text,
    text_null,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's `up` takes `&SchemaManager` with an elided lifetime; naming it is refused.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("resync")
                    .if_not_exists()
                    .col(integer("id").primary_key())
                    .col(string_len("phase", 16))
                    .col(boolean("full"))
                    .col(text("reason"))
                    .col(big_integer("after_csn"))
                    .col(big_integer_null("at_csn"))
                    .col(big_integer_null("at_offset"))
                    .col(big_integer_null("last_seq"))
                    .col(text_null("cursor"))
                    .col(big_integer("received"))
                    .col(big_integer_null("total"))
                    .col(big_integer("bytes"))
                    .col(big_integer("pages"))
                    .col(big_integer("requested_at_ms"))
                    .col(big_integer_null("started_at_ms"))
                    .col(big_integer_null("finished_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("ships")
                    .add_column(big_integer_null("decommissioned_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ship_seqs")
                    .if_not_exists()
                    .col(string_len("ship_id", 64))
                    .col(big_integer("seq"))
                    .col(big_integer_null("hlc_ms"))
                    .col(integer_null("hlc_c"))
                    .col(string_len_null("content_type", 128))
                    .col(string_len_null("document_id", 36))
                    .primary_key(Index::create().col("ship_id").col("seq"))
                    .to_owned(),
            )
            .await
    }
}
