//! `documents.created_at_ms`: when the document's row was first written on this node, so a
//! Strapi client can filter and sort by `createdAt`. Rows already there take their last
//! write's time, the closest this node knows.

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::big_integer;

use crate::Step;

crate::migration![
    Step::Column("documents", big_integer("created_at_ms").default(0).to_owned()),
    Step::Rows(
        Query::update()
            .table("documents")
            .value("created_at_ms", Expr::col("updated_at_ms"))
            .and_where(Expr::col("created_at_ms").eq(0))
            .to_owned(),
    ),
];
