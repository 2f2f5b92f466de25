//! The storage conformance suite (`offline_sync_storage::conformance`), run against SQLite
//! and a real PostgreSQL (127.0.0.1:5432; each test creates its own database and fails when
//! the server is missing), and what only `SeaStorage` does.

#![allow(clippy::unwrap_used)]

use offline_sync_model::{ContentType, DocumentId, Hlc, LocalWrite, ShipId};
use offline_sync_storage::{CommonStorage, Error, MasterStorage, ReplicaStorage, SeaStorage, Storage};
use serde_json::json;

async fn postgres(label: &'static str) -> SeaStorage {
    let url = offline_sync_storage::testing::fresh_postgres(label)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 is required");
    SeaStorage::connect(&url).await.unwrap()
}

offline_sync_storage::storage_conformance!(sqlite, |_label: &'static str| async move {
    offline_sync_storage::SeaStorage::connect("sqlite::memory:")
        .await
        .unwrap()
});
offline_sync_storage::storage_conformance!(postgres, super::postgres);

async fn ping_answers_and_a_closed_pool_is_unavailable(s: SeaStorage) {
    let took = s.ping().await.unwrap();
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    let dyn_storage: &dyn Storage = &s;
    dyn_storage.ping().await.unwrap();

    s.clone().close().await.unwrap();
    match s.ping().await {
        Err(e @ Error::Unavailable(_)) => assert!(e.is_retryable()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_sqlite_pool_is_unavailable() {
    ping_answers_and_a_closed_pool_is_unavailable(SeaStorage::connect("sqlite::memory:").await.unwrap())
        .await;
}

#[tokio::test]
async fn a_closed_postgres_pool_is_unavailable() {
    ping_answers_and_a_closed_pool_is_unavailable(postgres("ping").await).await;
}

#[tokio::test]
async fn migrations_are_idempotent_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = SeaStorage::sqlite_url(&dir.path().join("node.db"));
    let s = SeaStorage::connect(&url).await.unwrap();
    let id = DocumentId::new_v7();
    s.local_write(
        &ShipId::new("ship-1").unwrap(),
        &LocalWrite::Create {
            content_type: ContentType::new("api::article.article").unwrap(),
            id,
            fields: json!({"a": 1}).as_object().cloned().unwrap_or_default(),
        },
        Hlc::default(),
        1,
    )
    .await
    .unwrap();
    s.close().await.unwrap();
    let again = SeaStorage::connect(&url).await.unwrap();
    assert_eq!(
        again
            .replica_doc(&ContentType::new("api::article.article").unwrap(), id)
            .await
            .unwrap()
            .unwrap()
            .fields["a"],
        json!(1)
    );
    assert_eq!(again.backend(), "sqlite");
}

/// A master database from before broadcasts were published by position: each row's
/// `published` flag said whether it was. After the migration, publishing goes on from the
/// first row that was not, and nothing waiting is passed over.
async fn a_database_published_by_flags_keeps_its_place(url: &str) {
    use offline_sync_migrations::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;

    let db = sea_orm::Database::connect(url).await.unwrap();
    let before_position = Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m20261207_000001_publish_position")
        .unwrap() as u32;
    Migrator::up(&db, Some(before_position)).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO broadcasts (csn, payload, published, created_at_ms) VALUES \
         (1, 'a', TRUE, 1), (2, 'b', TRUE, 1), (3, 'c', FALSE, 1), (4, 'd', TRUE, 1), (5, 'e', FALSE, 1)",
    )
    .await
    .unwrap();
    db.close().await.unwrap();

    let s = SeaStorage::connect(url).await.unwrap();
    let waiting: Vec<Vec<u8>> = s
        .unpublished(10)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.payload)
        .collect();
    assert_eq!(waiting, [b"c".to_vec(), b"d".to_vec(), b"e".to_vec()]);

    // A master of the previous version, still running while the new one migrated, keeps
    // working with its flag, and what it writes is published by the new one after it.
    let old = sea_orm::Database::connect(url).await.unwrap();
    old.execute_unprepared("UPDATE broadcasts SET published = TRUE WHERE published = FALSE AND id <= 3")
        .await
        .unwrap();
    old.execute_unprepared(
        "INSERT INTO broadcasts (csn, payload, published, created_at_ms) VALUES (6, 'f', FALSE, 2)",
    )
    .await
    .unwrap();
    old.close().await.unwrap();
    let last = s.unpublished(10).await.unwrap().pop().unwrap();
    assert_eq!(last.payload, b"f");
}

#[tokio::test]
async fn a_sqlite_database_published_by_flags_keeps_its_place() {
    let dir = tempfile::tempdir().unwrap();
    a_database_published_by_flags_keeps_its_place(&SeaStorage::sqlite_url(&dir.path().join("node.db"))).await;
}

#[tokio::test]
async fn a_postgres_database_published_by_flags_keeps_its_place() {
    let url = offline_sync_storage::testing::fresh_postgres("published_by_flags")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 is required");
    a_database_published_by_flags_keeps_its_place(&url).await;
}

#[tokio::test]
async fn a_write_while_another_process_holds_the_file_is_contended_and_retryable() {
    use sea_orm::ConnectionTrait;

    let dir = tempfile::tempdir().unwrap();
    let url = SeaStorage::sqlite_url(&dir.path().join("node.db"));
    let s = SeaStorage::connect(&url).await.unwrap();
    let other = sea_orm::Database::connect(&url).await.unwrap();
    other.execute_unprepared("BEGIN EXCLUSIVE").await.unwrap();
    let write = LocalWrite::Create {
        content_type: ContentType::new("api::article.article").unwrap(),
        id: DocumentId::new_v7(),
        fields: json!({"a": 1}).as_object().cloned().unwrap_or_default(),
    };
    let ship = ShipId::new("ship-1").unwrap();
    match s.local_write(&ship, &write, Hlc::default(), 1).await {
        Err(e @ Error::Contended(_)) => assert!(e.is_retryable(), "{e}"),
        other => panic!("expected Contended, got {other:?}"),
    }
    other.execute_unprepared("COMMIT").await.unwrap();
    s.local_write(&ship, &write, Hlc::default(), 1).await.unwrap();
}

/// Forwards TCP to `upstream` until armed; once armed, the first client packet that holds
/// `COMMIT` is dropped with both connections, as a link that breaks at that moment.
async fn cut_at_commit(
    upstream: String,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let armed = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flag = armed.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            let flag = flag.clone();
            let up = async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = client_rx.read(&mut buf).await?;
                    let chunk = &buf[..n];
                    if n == 0 || (flag.load(Ordering::SeqCst) && chunk.windows(6).any(|w| w == b"COMMIT")) {
                        return Ok::<_, std::io::Error>(());
                    }
                    server_tx.write_all(chunk).await?;
                }
            };
            let down = async move { tokio::io::copy(&mut server_rx, &mut client_tx).await };
            tokio::spawn(async move {
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
    (addr, armed)
}

#[tokio::test]
async fn a_connection_lost_while_committing_leaves_the_outcome_unknown() {
    let url = offline_sync_storage::testing::fresh_postgres("commit_cut")
        .await
        .unwrap();
    let (server, database) = url.rsplit_once('/').unwrap();
    let (_, host) = server.rsplit_once('@').unwrap();
    let (proxy, armed) = cut_at_commit(host.to_owned()).await;
    let through = format!("{}@{proxy}/{database}", server.rsplit_once('@').unwrap().0);
    let s = SeaStorage::connect(&through).await.unwrap();
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let write = LocalWrite::Create {
        content_type: ContentType::new("api::article.article").unwrap(),
        id: DocumentId::new_v7(),
        fields: json!({"a": 1}).as_object().cloned().unwrap_or_default(),
    };
    match s
        .local_write(&ShipId::new("ship-1").unwrap(), &write, Hlc::default(), 1)
        .await
    {
        Err(e @ Error::Indeterminate(_)) => {
            assert!(
                !e.is_retryable(),
                "a blind retry of a create would make a second document"
            );
        }
        other => panic!("a write whose COMMIT was cut must be of unknown outcome, got {other:?}"),
    }
}

/// `n` of each article a field index test writes: 1 in 100 is 5, as a number or a string.
fn indexed_articles() -> Vec<serde_json::Value> {
    (0..1_000)
        .map(|i| match i % 200 {
            0 => json!({"n": 5, "shipId": "a"}),
            100 => json!({"n": "5", "shipId": "b"}),
            _ => json!({"n": 1_000 + i, "shipId": "c"}),
        })
        .collect()
}

/// Field indexes are made and dropped as asked, an equality filter on the field reads
/// through its index, and it answers as the same filter without one.
async fn field_indexes_are_kept_as_asked_and_read_by_equality(url: &str) {
    use offline_sync_storage::{DocumentQuery, Filter, Member, Page, Test};
    use sea_orm::ConnectionTrait;
    use std::collections::BTreeSet;

    let s = SeaStorage::connect(url).await.unwrap();
    let ct = ContentType::new("api::article.article").unwrap();
    let ship = ShipId::new("ship-1").unwrap();
    for fields in indexed_articles() {
        let write = LocalWrite::Create {
            content_type: ct.clone(),
            id: DocumentId::new_v7(),
            fields: fields.as_object().cloned().unwrap_or_default(),
        };
        s.local_write(&ship, &write, Hlc::default(), 1).await.unwrap();
    }
    let raw = sea_orm::Database::connect(url).await.unwrap();
    raw.execute_unprepared("ANALYZE").await.unwrap();
    let query = DocumentQuery {
        filter: Some(Filter::Test(
            Member::Field(vec!["n".into()]),
            Test::Eq("5".into()),
        )),
        sort: Vec::new(),
        ..Default::default()
    };
    let before = s.find_documents(&ct, &query, Page::all()).await.unwrap();
    assert_eq!(before.1, 10);
    let plan = s.explain_find(&ct, &query).await.unwrap();
    assert!(!plan.contains("documents_by_field_"), "{plan}");

    let wanted: BTreeSet<String> = ["n".to_owned(), "shipId".to_owned()].into();
    let made = s.index_fields(&wanted).await.unwrap();
    assert_eq!(made.created.len(), 2, "{made:?}");
    assert!(
        made.created
            .iter()
            .any(|n| n.starts_with("documents_by_field_n_")),
        "{made:?}"
    );
    assert_eq!(
        s.index_fields(&wanted).await.unwrap(),
        Default::default(),
        "repeated"
    );
    raw.execute_unprepared("ANALYZE").await.unwrap();
    let plan = s.explain_find(&ct, &query).await.unwrap();
    assert!(
        plan.contains("documents_by_field_n_"),
        "the filter must read the index:\n{plan}"
    );
    assert_eq!(s.find_documents(&ct, &query, Page::all()).await.unwrap(), before);
    let any = DocumentQuery {
        filter: Some(Filter::Test(
            Member::Field(vec!["n".into()]),
            Test::In(vec!["5".into(), "1001".into()]),
        )),
        sort: Vec::new(),
        ..Default::default()
    };
    let plan = s.explain_find(&ct, &any).await.unwrap();
    assert!(
        plan.contains("documents_by_field_n_"),
        "$in must read the index:\n{plan}"
    );
    assert_eq!(s.find_documents(&ct, &any, Page::all()).await.unwrap().1, 11);

    let only_n: BTreeSet<String> = ["n".to_owned()].into();
    let changed = s.index_fields(&only_n).await.unwrap();
    assert!(changed.created.is_empty(), "{changed:?}");
    assert_eq!(changed.dropped.len(), 1, "{changed:?}");
    assert!(
        changed.dropped[0].starts_with("documents_by_field_shipid_"),
        "{changed:?}"
    );
    // A long name in mixed case, and two names apart by case only, each get an index of
    // their own that a second start keeps as it is.
    let odd: BTreeSet<String> = [
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl".to_owned(),
        "Ab".to_owned(),
        "ab".to_owned(),
    ]
    .into();
    assert_eq!(s.index_fields(&odd).await.unwrap().created.len(), 3);
    assert_eq!(
        s.index_fields(&odd).await.unwrap(),
        Default::default(),
        "kept at a second start"
    );
    let refused = s.index_fields(&["a.b".to_owned()].into()).await;
    assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
    s.index_fields(&BTreeSet::new()).await.unwrap();
    assert!(
        !s.explain_find(&ct, &query)
            .await
            .unwrap()
            .contains("documents_by_field_")
    );
}

#[tokio::test]
async fn sqlite_field_indexes_are_kept_as_asked_and_read_by_equality() {
    let dir = tempfile::tempdir().unwrap();
    field_indexes_are_kept_as_asked_and_read_by_equality(&SeaStorage::sqlite_url(
        &dir.path().join("node.db"),
    ))
    .await;
}

#[tokio::test]
async fn postgres_field_indexes_are_kept_as_asked_and_read_by_equality() {
    let url = offline_sync_storage::testing::fresh_postgres("field_indexes")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 is required");
    field_indexes_are_kept_as_asked_and_read_by_equality(&url).await;
}
