//! `dead_letters.handled_at_ms`: when an operator retried or discarded a dead letter. Retention
//! deletes handled letters by this time, not by when they arrived. Null while pending; letters
//! handled before this migration get their arrival time, by which retention pruned them so far.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::big_integer_null;

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
                    .table("dead_letters")
                    .add_column(big_integer_null("handled_at_ms"))
                    .to_owned(),
            )
            .await?;
        let backfill = Query::update()
            .table("dead_letters")
            .value("handled_at_ms", Expr::col("created_at_ms"))
            .and_where(Expr::col("status").ne("pending"))
            .and_where(Expr::col("handled_at_ms").is_null())
            .to_owned();
        manager.exec_stmt(backfill).await
    }
}
