//! `outbox.resent`: the row was renumbered and sent again after the ship's database was put
//! back from a backup; the master does not let it overwrite what the same ship wrote later.

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::boolean;

use crate::Step;

crate::migration![Step::Column(
    "outbox",
    boolean("resent").default(false).to_owned()
),];
