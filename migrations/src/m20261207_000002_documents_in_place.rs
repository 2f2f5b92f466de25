//! Document updates rewrite their row in place where PostgreSQL can (a heap-only update):
//! `documents_by_version` is dropped, since an index over the version, which every commit
//! changes, made every update a new row version in every index of the table; and
//! PostgreSQL's table leaves a fifth of each page free, so the new version of a row fits
//! beside the old. Reads by version (a resync's snapshot pages, tombstone collection) are
//! rare and scan the table in key order instead.

use sea_orm_migration::prelude::*;

use crate::Step;

crate::migration![
    Step::DropIndex("documents_by_version", "documents"),
    Step::Postgres("ALTER TABLE documents SET (fillfactor = 80)"),
];
