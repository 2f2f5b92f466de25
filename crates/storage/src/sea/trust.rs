//! Signing keys (this node's own, and the ones it pinned for its peers) and the audit log.

use offline_sync_model::PublicKey;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::common::{clean_text, insert_missing, parse_json, to_i64, to_json, to_u64, upsert};
use crate::entity::{audit_log, node_keys, peer_keys};
use crate::error::{Error, Result};
use crate::types::{AuditEntry, KeySource, KeyStatus, NewAuditEntry, Page, PeerKey};

/// The name of this node's signing key in `node_keys`.
const SIGNING: &str = "signing";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

pub(super) async fn signing_seed<C: ConnectionTrait>(
    c: &C,
    generated: [u8; 32],
    now_ms: u64,
) -> Result<[u8; 32]> {
    let row = node_keys::ActiveModel {
        name: Set(SIGNING.to_owned()),
        seed: Set(hex(&generated)),
        created_at_ms: Set(to_i64(now_ms)),
    };
    insert_missing(c, row, node_keys::Column::Name).await?;
    let row = node_keys::Entity::find_by_id(SIGNING.to_owned())
        .one(c)
        .await?
        .ok_or_else(|| Error::corrupt("the signing key row is missing"))?;
    unhex(&row.seed).ok_or_else(|| Error::corrupt("unreadable signing key"))
}

fn to_peer(row: peer_keys::Model) -> Result<PeerKey> {
    Ok(PeerKey {
        key: PublicKey::parse(&row.public_key)
            .map_err(|e| Error::corrupt(format!("pinned key of {}: {e}", row.signer)))?,
        status: KeyStatus::parse(&row.status)
            .ok_or_else(|| Error::corrupt(format!("key status {:?}", row.status)))?,
        source: KeySource::parse(&row.source)
            .ok_or_else(|| Error::corrupt(format!("key source {:?}", row.source)))?,
        first_seen_ms: to_u64(row.first_seen_ms),
        updated_at_ms: to_u64(row.updated_at_ms),
        signer: row.signer,
    })
}

pub(super) async fn peer_keys<C: ConnectionTrait>(c: &C) -> Result<Vec<PeerKey>> {
    peer_keys::Entity::find()
        .order_by_asc(peer_keys::Column::Signer)
        .all(c)
        .await?
        .into_iter()
        .map(to_peer)
        .collect()
}

fn peer_row(key: &PeerKey) -> peer_keys::ActiveModel {
    peer_keys::ActiveModel {
        signer: Set(key.signer.clone()),
        public_key: Set(key.key.to_base64()),
        status: Set(key.status.as_str().to_owned()),
        source: Set(key.source.as_str().to_owned()),
        first_seen_ms: Set(to_i64(key.first_seen_ms)),
        updated_at_ms: Set(to_i64(key.updated_at_ms)),
    }
}

pub(super) async fn pin_peer_key<C: ConnectionTrait>(c: &C, key: &PeerKey) -> Result<PeerKey> {
    insert_missing(c, peer_row(key), peer_keys::Column::Signer).await?;
    let row = peer_keys::Entity::find_by_id(key.signer.clone())
        .one(c)
        .await?
        .ok_or_else(|| Error::corrupt(format!("the pinned key of {} is missing", key.signer)))?;
    to_peer(row)
}

pub(super) async fn save_peer_key<C: ConnectionTrait>(c: &C, key: &PeerKey) -> Result<()> {
    use peer_keys::Column as K;
    let update = [K::PublicKey, K::Status, K::Source, K::UpdatedAtMs];
    upsert(c, peer_row(key), [K::Signer], update).await
}

pub(super) async fn audit<C: ConnectionTrait>(c: &C, e: &NewAuditEntry) -> Result<()> {
    audit_log::Entity::insert(audit_log::ActiveModel {
        id: NotSet,
        at_ms: Set(to_i64(e.at_ms)),
        role: Set(clean_text(&e.role)),
        action: Set(clean_text(&e.action)),
        target: Set(clean_text(&e.target)),
        detail: Set(to_json(&e.detail)),
    })
    .exec(c)
    .await?;
    Ok(())
}

pub(super) async fn audit_log<C: ConnectionTrait>(c: &C, page: Page) -> Result<(Vec<AuditEntry>, u64)> {
    let total = audit_log::Entity::find().count(c).await?;
    let rows = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Id)
        .offset(page.offset)
        .limit(page.limit)
        .all(c)
        .await?;
    let entries = rows
        .into_iter()
        .map(|r| {
            Ok(AuditEntry {
                id: to_u64(r.id),
                entry: NewAuditEntry {
                    at_ms: to_u64(r.at_ms),
                    role: r.role,
                    action: r.action,
                    target: r.target,
                    detail: parse_json("audit detail", &r.detail)?,
                },
            })
        })
        .collect::<Result<_>>()?;
    Ok((entries, total))
}

pub(super) async fn prune_audit<C: ConnectionTrait>(c: &C, before_ms: u64) -> Result<u64> {
    let res = audit_log::Entity::delete_many()
        .filter(audit_log::Column::AtMs.lt(to_i64(before_ms)))
        .exec(c)
        .await?;
    Ok(res.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_round_trip_through_hex() {
        let seed = [0xab; 32];
        assert_eq!(unhex(&hex(&seed)), Some(seed));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abab"), None);
    }
}
