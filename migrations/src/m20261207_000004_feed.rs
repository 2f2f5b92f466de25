//! `feed`: the node's change feed, one row for every change of a document's content that the
//! node applied (its own writes, the master's commits, a resync's pages), in the order they
//! were applied, for `GET /api/offline-sync/changes` and the webhooks. `seq` numbers the rows
//! and is never given twice, pruned rows included; `kind` is `create`, `update` or `delete`;
//! `fields` is the document's content after the change (for a delete, its last content, as
//! its tombstone keeps it).
//!
//! Rows are written by a trigger on `documents`, in the transaction of the write: no path that
//! changes a document can forget its row, and a crash keeps both or neither. An insert of a
//! live row is a create; an update is a delete when it deletes, a create when it brings a
//! tombstone back, an update when the content changes and nothing otherwise (a version or
//! `meta` change alone is sync bookkeeping, not a change a user sees). Tombstones inserted
//! or collected are not changes either.
//! A row is a document's state as a transaction left it: several changes of one document
//! applied in one transaction (a batch of the master's commits) are one row.
//!
//! The triggers fire only on writes that set `fields` or `deleted`: a document's version and
//! `meta` alone are written often, and cost nothing more.
//!
//! Rows become visible in `seq` order because the node serialises its writing transactions
//! (one writer lock a process, one process a database): a reader never sees a row before
//! one with a lower `seq` that will still commit.

use sea_orm_migration::prelude::*;

use crate::Step;

crate::migration![
    Step::Sqlite(
        "CREATE TABLE IF NOT EXISTS feed (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            content_type TEXT NOT NULL,
            document_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            fields TEXT NOT NULL,
            version BIGINT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            at_ms BIGINT NOT NULL
        )"
    ),
    Step::Sqlite(
        "CREATE TRIGGER IF NOT EXISTS documents_feed_insert AFTER INSERT ON documents
         WHEN NOT NEW.deleted
         BEGIN
            INSERT INTO feed (content_type, document_id, kind, fields, version, created_at_ms, at_ms)
            VALUES (NEW.content_type, NEW.document_id, 'create', NEW.fields, NEW.version,
                    NEW.created_at_ms, NEW.updated_at_ms);
         END"
    ),
    Step::Sqlite(
        "CREATE TRIGGER IF NOT EXISTS documents_feed_update AFTER UPDATE OF fields, deleted ON documents
         WHEN (NEW.fields IS NOT OLD.fields OR NEW.deleted IS NOT OLD.deleted)
              AND NOT (OLD.deleted AND NEW.deleted)
         BEGIN
            INSERT INTO feed (content_type, document_id, kind, fields, version, created_at_ms, at_ms)
            VALUES (NEW.content_type, NEW.document_id,
                    CASE WHEN NEW.deleted THEN 'delete' WHEN OLD.deleted THEN 'create' ELSE 'update' END,
                    NEW.fields, NEW.version, NEW.created_at_ms, NEW.updated_at_ms);
         END"
    ),
    Step::Postgres(
        "CREATE TABLE IF NOT EXISTS feed (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            content_type TEXT NOT NULL,
            document_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            fields TEXT NOT NULL,
            version BIGINT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            at_ms BIGINT NOT NULL
        )"
    ),
    Step::Postgres(
        "CREATE OR REPLACE FUNCTION documents_feed() RETURNS trigger LANGUAGE plpgsql AS $$
         DECLARE
            kind TEXT;
         BEGIN
            IF TG_OP = 'INSERT' THEN
                IF NEW.deleted THEN RETURN NULL; END IF;
                kind := 'create';
            ELSIF OLD.deleted AND NEW.deleted THEN
                RETURN NULL;
            ELSIF NEW.deleted THEN
                kind := 'delete';
            ELSIF OLD.deleted THEN
                kind := 'create';
            ELSIF NEW.fields IS DISTINCT FROM OLD.fields THEN
                kind := 'update';
            ELSE
                RETURN NULL;
            END IF;
            INSERT INTO feed (content_type, document_id, kind, fields, version, created_at_ms, at_ms)
            VALUES (NEW.content_type, NEW.document_id, kind, NEW.fields, NEW.version,
                    NEW.created_at_ms, NEW.updated_at_ms);
            RETURN NULL;
         END
         $$"
    ),
    Step::Postgres("DROP TRIGGER IF EXISTS documents_feed ON documents"),
    Step::Postgres(
        "CREATE TRIGGER documents_feed AFTER INSERT OR UPDATE OF fields, deleted ON documents
         FOR EACH ROW EXECUTE FUNCTION documents_feed()"
    ),
];
