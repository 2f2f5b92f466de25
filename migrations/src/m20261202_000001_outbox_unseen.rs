//! `outbox.unseen`: what of the master's state a ship change claims not to have taken in
//! (JSON of `offline_sync_model::Unseen`; null when it took in everything up to its base).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's `up` takes `&SchemaManager` with an elided lifetime; naming it is refused.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("outbox")
                    .add_column(text_null("unseen"))
                    .to_owned(),
            )
            .await
    }
}
