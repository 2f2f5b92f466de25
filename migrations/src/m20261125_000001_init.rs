//! The initial schema.
//!
//! - `documents`: every document with its fields as a JSON object. A deleted document stays
//!   as a tombstone (`deleted = true`, last fields kept). `version` is the CSN of the last
//!   change on the master and the base version on a replica; `meta` holds the per-field
//!   versions (master) or the marks of unacknowledged local changes (replica) as JSON.
//! - `outbox` (replica): local changes in `seq` order, with their delivery state.
//! - `ships` (master): the ship registry with the last seq applied from each ship.
//! - `offsets`: next offset to read per topic partition, written with the effects of the
//!   records read.
//! - `broadcasts` (master): committed changes and acknowledgements waiting to be published.
//! - `conflicts` (master), `dead_letters`, `counters` (CSN, seq, applied CSN).

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, blob, blob_null, boolean, integer, string_len,
    string_len_null, text, text_null,
};

use crate::{index, table};

crate::migration![
    table(
        "documents",
        vec![
            string_len("content_type", 128),
            string_len("document_id", 36),
            text("fields"),
            boolean("deleted"),
            big_integer("version"),
            text("meta"),
            big_integer("updated_at_ms"),
        ],
        &["content_type", "document_id"],
    ),
    index("documents_by_version", "documents", &["version"]),
    table(
        "outbox",
        vec![
            big_integer("seq").primary_key().to_owned(),
            string_len("content_type", 128),
            string_len("document_id", 36),
            string_len("op", 16),
            text("fields"),
            big_integer("base_version"),
            big_integer("hlc_ms"),
            integer("hlc_c"),
            string_len("state", 16),
            text_null("outcome"),
            big_integer("created_at_ms"),
            big_integer_null("sent_at_ms"),
            big_integer_null("acked_at_ms"),
        ],
        &[],
    ),
    index("outbox_by_state", "outbox", &["state", "seq"]),
    table(
        "ships",
        vec![
            string_len("ship_id", 64).primary_key().to_owned(),
            big_integer("last_seq"),
            big_integer("changes_applied"),
            big_integer_null("last_seen_ms"),
            big_integer("pending"),
            big_integer_null("oldest_unacked_ms"),
            big_integer("applied_csn"),
            big_integer("registered_at_ms"),
        ],
        &[],
    ),
    table(
        "offsets",
        vec![
            string_len("topic", 255),
            integer("partition"),
            big_integer("next_offset"),
        ],
        &["topic", "partition"],
    ),
    table(
        "broadcasts",
        vec![
            big_pk_auto("id"),
            big_integer_null("csn"),
            text("payload"),
            boolean("published"),
            big_integer("created_at_ms"),
        ],
        &[],
    ),
    index("broadcasts_by_published", "broadcasts", &["published", "id"]),
    table(
        "conflicts",
        vec![
            big_pk_auto("id"),
            string_len("content_type", 128),
            string_len("document_id", 36),
            string_len("kind", 16),
            string_len("ship_id", 64),
            big_integer("ship_seq"),
            big_integer("base_version"),
            big_integer("master_version"),
            text("fields"),
            text("ship_values"),
            boolean("ship_deleted"),
            text("master_values"),
            boolean("master_deleted"),
            string_len("status", 16),
            string_len_null("strategy", 16),
            text_null("resolution"),
            big_integer_null("resolved_csn"),
            big_integer("created_at_ms"),
            big_integer("updated_at_ms"),
        ],
        &[],
    ),
    index(
        "conflicts_by_document",
        "conflicts",
        &["content_type", "document_id", "status"]
    ),
    table(
        "dead_letters",
        vec![
            big_pk_auto("id"),
            string_len("topic", 255),
            integer("partition"),
            big_integer("offset"),
            blob_null("key"),
            blob("payload"),
            text("reason"),
            string_len("status", 16),
            big_integer("created_at_ms"),
        ],
        &[],
    ),
    table(
        "counters",
        vec![
            string_len("name", 64).primary_key().to_owned(),
            big_integer("value"),
        ],
        &[],
    ),
];
