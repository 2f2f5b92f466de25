//! Automatic dead-letter retries: `dead_letters.attempts` (automatic retries made so far) and
//! `dead_letters.next_retry_at_ms` (when the next one is due; null when none is). Statuses are
//! now `pending`, `retrying`, `exhausted`, `resolved` and `discarded`: letters retried by an
//! operator before this migration (`retried`) are `resolved`.

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::{big_integer_null, integer};

use crate::Step;

crate::migration![
    Step::Column("dead_letters", integer("attempts").default(0).to_owned()),
    Step::Column("dead_letters", big_integer_null("next_retry_at_ms")),
    Step::Rows(
        Query::update()
            .table("dead_letters")
            .value("status", "resolved")
            .and_where(Expr::col("status").eq("retried"))
            .to_owned(),
    ),
];
