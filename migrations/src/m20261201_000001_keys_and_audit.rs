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

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// The trait's `up` takes `&SchemaManager` with an elided lifetime; naming it is refused.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("node_keys")
                    .if_not_exists()
                    .col(string_len("name", 32).primary_key())
                    .col(text("seed"))
                    .col(big_integer("created_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("peer_keys")
                    .if_not_exists()
                    .col(string_len("signer", 64).primary_key())
                    .col(string_len("public_key", 64))
                    .col(string_len("status", 16))
                    .col(string_len("source", 16))
                    .col(big_integer("first_seen_ms"))
                    .col(big_integer("updated_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_log")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(big_integer("at_ms"))
                    .col(string_len("role", 16))
                    .col(string_len("action", 64))
                    .col(text("target"))
                    .col(text("detail"))
                    .to_owned(),
            )
            .await
    }
}
