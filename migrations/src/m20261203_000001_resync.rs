//! `resync`: a replica's resync from the master's state, one row while it runs and after it
//! ended (the last one), so a resync cut by a lost link or a restart continues from the last
//! page received instead of from zero.
//!
//! `ship_seqs`: the hybrid logical time and the document of each change the master applied (or
//! refused) from a ship, by ship and seq, kept until the ship says it has the answers; a ship resyncing after
//! its answers were lost tells by it its changes the master saw from ones written under the
//! same seqs after its database was put back from a backup.
//!
//! `ships.decommissioned_at_ms`: when an operator decommissioned the ship (null: it is in
//! service); a decommissioned ship no longer holds the collection of tombstones back.
//!
//! Phases: `requested` (nothing fetched yet), `fetching` (the point it continues from, `at_csn`
//! and `at_offset`, is fixed and pages are being applied; `cursor` is the last document
//! received), `done`.

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, integer, integer_null, string_len, string_len_null, text,
    text_null,
};

use crate::{Step, table};

crate::migration![
    table(
        "resync",
        vec![
            integer("id").primary_key().to_owned(),
            string_len("phase", 16),
            boolean("full"),
            text("reason"),
            big_integer("after_csn"),
            big_integer_null("at_csn"),
            big_integer_null("at_offset"),
            big_integer_null("last_seq"),
            text_null("cursor"),
            big_integer("received"),
            big_integer_null("total"),
            big_integer("bytes"),
            big_integer("pages"),
            big_integer("requested_at_ms"),
            big_integer_null("started_at_ms"),
            big_integer_null("finished_at_ms"),
        ],
        &[],
    ),
    Step::Column("ships", big_integer_null("decommissioned_at_ms")),
    table(
        "ship_seqs",
        vec![
            string_len("ship_id", 64),
            big_integer("seq"),
            big_integer_null("hlc_ms"),
            integer_null("hlc_c"),
            string_len_null("content_type", 128),
            string_len_null("document_id", 36),
        ],
        &["ship_id", "seq"],
    ),
];
