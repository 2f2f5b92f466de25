//! Automatic dead-letter retries: `dead_letters.attempts` (automatic retries made so far) and
//! `dead_letters.next_retry_at_ms` (when the next one is due; null when none is). Statuses are
//! now `pending`, `retrying`, `exhausted`, `resolved` and `discarded`: letters retried by an
//! operator before this migration (`retried`) are `resolved`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, integer};

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
                    .add_column(integer("attempts").default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("dead_letters")
                    .add_column(big_integer_null("next_retry_at_ms"))
                    .to_owned(),
            )
            .await?;
        let renamed = Query::update()
            .table("dead_letters")
            .value("status", "resolved")
            .and_where(Expr::col("status").eq("retried"))
            .to_owned();
        manager.exec_stmt(renamed).await
    }
}
