//! The master publishes broadcasts by position: one counter row, `broadcasts_published`, holds
//! the id of the last broadcast published, instead of a `published` flag on every row, which
//! wrote each broadcast twice and kept an index that changed with every publish. The position
//! starts just below the first row not yet published (or at the last row, when every row was),
//! so nothing waiting is passed over; rows published out of order before, if any, are
//! published once more, which receivers drop as repeats.
//!
//! The column stays (written `false`, never read): migrations run when a node connects,
//! before it takes the master lock, so a master of the previous version may still be running
//! on the database; it keeps working (without the flag's index, more slowly) until it hands
//! over, and what it publishes meanwhile the new master publishes once more. Every step can
//! run again after a crash midway (SQLite runs a migration outside a transaction).

use sea_orm_migration::prelude::*;

use crate::Step;

crate::migration![
    Step::Sql(
        "INSERT INTO counters (name, value) SELECT 'broadcasts_published', \
         COALESCE((SELECT MIN(id) - 1 FROM broadcasts WHERE published = FALSE), \
         (SELECT MAX(id) FROM broadcasts), 0) \
         ON CONFLICT (name) DO NOTHING"
    ),
    Step::DropIndex("broadcasts_by_published", "broadcasts"),
];
