//! The initial schema.
//!
//! - `documents`: every document with its fields as a JSON object. A deleted document stays
//!   as a tombstone (`deleted = true`, last fields kept). `version` is the CSN of the last
//!   change on the master and the base version on a replica; `meta` holds the per-field
//!   versions (master) or the marks of unacknowledged local changes (replica) as JSON.
//! - `outbox` (replica): local changes in `seq` order, with their delivery state.
//! - `ships` (master): the ship registry with the last seq applied from each ship.
//! - `offsets`: next offset to read per topic partition, written with the effects of the
//!   records read.
//! - `broadcasts` (master): committed changes and acknowledgements waiting to be published.
//! - `conflicts` (master), `dead_letters`, `counters` (CSN, seq, applied CSN).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, blob, blob_null, boolean, integer, string_len,
    string_len_null, text, text_null,
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
                    .table("documents")
                    .if_not_exists()
                    .col(string_len("content_type", 128))
                    .col(string_len("document_id", 36))
                    .col(text("fields"))
                    .col(boolean("deleted"))
                    .col(big_integer("version"))
                    .col(text("meta"))
                    .col(big_integer("updated_at_ms"))
                    .primary_key(Index::create().col("content_type").col("document_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("documents_by_version")
                    .table("documents")
                    .col("version")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("outbox")
                    .if_not_exists()
                    .col(big_integer("seq").primary_key())
                    .col(string_len("content_type", 128))
                    .col(string_len("document_id", 36))
                    .col(string_len("op", 16))
                    .col(text("fields"))
                    .col(big_integer("base_version"))
                    .col(big_integer("hlc_ms"))
                    .col(integer("hlc_c"))
                    .col(string_len("state", 16))
                    .col(text_null("outcome"))
                    .col(big_integer("created_at_ms"))
                    .col(big_integer_null("sent_at_ms"))
                    .col(big_integer_null("acked_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_by_state")
                    .table("outbox")
                    .col("state")
                    .col("seq")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ships")
                    .if_not_exists()
                    .col(string_len("ship_id", 64).primary_key())
                    .col(big_integer("last_seq"))
                    .col(big_integer("changes_applied"))
                    .col(big_integer_null("last_seen_ms"))
                    .col(big_integer("pending"))
                    .col(big_integer_null("oldest_unacked_ms"))
                    .col(big_integer("applied_csn"))
                    .col(big_integer("registered_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("offsets")
                    .if_not_exists()
                    .col(string_len("topic", 255))
                    .col(integer("partition"))
                    .col(big_integer("next_offset"))
                    .primary_key(Index::create().col("topic").col("partition"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("broadcasts")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(big_integer_null("csn"))
                    .col(text("payload"))
                    .col(boolean("published"))
                    .col(big_integer("created_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("broadcasts_by_published")
                    .table("broadcasts")
                    .col("published")
                    .col("id")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("conflicts")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string_len("content_type", 128))
                    .col(string_len("document_id", 36))
                    .col(string_len("kind", 16))
                    .col(string_len("ship_id", 64))
                    .col(big_integer("ship_seq"))
                    .col(big_integer("base_version"))
                    .col(big_integer("master_version"))
                    .col(text("fields"))
                    .col(text("ship_values"))
                    .col(boolean("ship_deleted"))
                    .col(text("master_values"))
                    .col(boolean("master_deleted"))
                    .col(string_len("status", 16))
                    .col(string_len_null("strategy", 16))
                    .col(text_null("resolution"))
                    .col(big_integer_null("resolved_csn"))
                    .col(big_integer("created_at_ms"))
                    .col(big_integer("updated_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("conflicts_by_document")
                    .table("conflicts")
                    .col("content_type")
                    .col("document_id")
                    .col("status")
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("dead_letters")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string_len("topic", 255))
                    .col(integer("partition"))
                    .col(big_integer("offset"))
                    .col(blob_null("key"))
                    .col(blob("payload"))
                    .col(text("reason"))
                    .col(string_len("status", 16))
                    .col(big_integer("created_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("counters")
                    .if_not_exists()
                    .col(string_len("name", 64).primary_key())
                    .col(big_integer("value"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
