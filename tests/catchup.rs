//! Catch-up: a ship whose database was restored from a backup, or that falls behind what
//! `master-updates` still holds, loses nothing and converges with the master. Over the
//! in-memory transport, on a PostgreSQL and on a SQLite master.

#![allow(clippy::unwrap_used)]

mod support;

use offline_sync::model::{Message, Origin, decode, unseal};
use offline_sync::storage::{OutboxState, Page};
use serde_json::json;
use support::{Fleet, Setup, ct, fields};

/// The master's commits of `ship`'s changes, by seq, with the hybrid logical time of the
/// change each one applied.
async fn applied_from(f: &Fleet, ship: &str) -> std::collections::BTreeMap<u64, offline_sync::model::Hlc> {
    let all = f
        .broker
        .fetch("master-updates", 0, 0, 100_000, std::time::Duration::ZERO)
        .await
        .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for r in all.records {
        if let Ok(Ok(Message::Commit(c))) = unseal(&r.record.value).map(|s| decode(s.msg))
            && let (Origin::Ship(s), Some(seq)) = (&c.origin, c.seq)
            && s.as_str() == ship
        {
            out.insert(seq, c.hlc);
        }
    }
    out
}

/// A ship restored from a file copy after the master applied more of its changes: every value
/// written after the restore reaches the master and the other ship, and no outbox row is marked
/// acknowledged that the master did not apply as that very change.
async fn a_restored_ship_loses_no_write_made_after_the_restore(db: Setup) {
    let mut f = Fleet::new(2, db, "restored_ship").await;
    let mut ids = vec![];
    for n in 0..3 {
        ids.push(
            f.ships[0]
                .create(&ct(), fields(json!({"n": n})))
                .await
                .unwrap()
                .id,
        );
    }
    f.sync().await;
    let backup = tempfile::tempdir().unwrap();
    let copy = backup.path().join("ship-0.db");
    f.backup_ship(0, &copy);
    // Written and applied after the backup: seqs 4 to 8, which the restored copy never saw.
    for (k, id) in ids.iter().cycle().take(5).enumerate() {
        f.ships[0]
            .update(&ct(), *id, fields(json!({"lost": k})))
            .await
            .unwrap();
    }
    f.sync().await;
    f.restore_ship(0, &copy).await;
    // Written after the restore, with the seqs the master already used.
    for (k, id) in ids.iter().cycle().take(5).enumerate() {
        f.ships[0]
            .update(&ct(), *id, fields(json!({"after": 100 + k})))
            .await
            .unwrap();
    }
    f.sync().await;
    f.sync().await;
    f.assert_converged().await;
    for (k, id) in ids.iter().cycle().take(5).enumerate().skip(2) {
        let doc = f.master.get(&ct(), *id).await.unwrap().unwrap();
        assert_eq!(
            doc.fields.get("after"),
            Some(&json!(100 + k)),
            "a value written after the restore never reached the master"
        );
    }
    let applied = applied_from(&f, "ship-0").await;
    let (rows, _) = f.ships[0]
        .queue(Some(OutboxState::Acked), Page::all())
        .await
        .unwrap();
    for row in rows {
        assert_eq!(
            applied.get(&row.change.seq),
            Some(&row.change.hlc),
            "row {} is marked acknowledged but the master applied another change under its seq",
            row.change.seq
        );
    }
}

on_both_masters!(a_restored_ship_loses_no_write_made_after_the_restore);
