//! `ships.changes_refused` and `ships.last_refusal`: how many of a ship's changes the master
//! refused, and the seq and reason of the last one, so a refusal is visible onshore too.

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::{big_integer, text_null};

use crate::Step;

crate::migration![
    Step::Column("ships", big_integer("changes_refused").default(0).to_owned()),
    Step::Column("ships", text_null("last_refusal")),
];
