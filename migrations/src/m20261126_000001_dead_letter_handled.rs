//! `dead_letters.handled_at_ms`: when an operator retried or discarded a dead letter. Retention
//! deletes handled letters by this time, not by when they arrived. Null while pending; letters
//! handled before this migration get their arrival time, by which retention pruned them so far.

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::big_integer_null;

use crate::Step;

crate::migration![
    Step::Column("dead_letters", big_integer_null("handled_at_ms")),
    Step::Rows(
        Query::update()
            .table("dead_letters")
            .value("handled_at_ms", Expr::col("created_at_ms"))
            .and_where(Expr::col("status").ne("pending"))
            .and_where(Expr::col("handled_at_ms").is_null())
            .to_owned(),
    ),
];
