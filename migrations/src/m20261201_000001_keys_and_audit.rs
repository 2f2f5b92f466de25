//! Signing keys and the audit log.
//!
//! - `node_keys`: this node's own signing key (the 32-byte Ed25519 seed, base64), made on
//!   first start unless one is given by setting. One row, named `signing`.
//! - `peer_keys`: the public key pinned for each sender (`master` on a replica, ship ids on the
//!   master), with its status (`trusted`, `pending` approval, `revoked`) and where it came
//!   from (`first-contact`, `setting`, `admin`).
//! - `audit_log`: every admin action through the API, with its time, the token's role, the
//!   action, its target and what changed (JSON).

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::{big_integer, big_pk_auto, string_len, text};

use crate::table;

crate::migration![
    table(
        "node_keys",
        vec![
            string_len("name", 32).primary_key().to_owned(),
            text("seed"),
            big_integer("created_at_ms"),
        ],
        &[],
    ),
    table(
        "peer_keys",
        vec![
            string_len("signer", 64).primary_key().to_owned(),
            string_len("public_key", 64),
            string_len("status", 16),
            string_len("source", 16),
            big_integer("first_seen_ms"),
            big_integer("updated_at_ms"),
        ],
        &[],
    ),
    table(
        "audit_log",
        vec![
            big_pk_auto("id"),
            big_integer("at_ms"),
            string_len("role", 16),
            string_len("action", 64),
            text("target"),
            text("detail"),
        ],
        &[],
    ),
];
