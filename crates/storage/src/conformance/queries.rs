//! Checks of document queries: every filter operator, nested conditions, sorting and
//! counting, as [`crate::DocumentQuery`] documents them, alike on every database.

use offline_sync_model::{ContentType, DocumentId, Hlc, LocalWrite};
use serde_json::json;

use super::{create, ct, delete, fields, ship, update};
use crate::query::{Case, DocumentQuery, Filter, Member, SortKey, Test, TextTest};
use crate::{Page, Storage};

/// The documents every check reads, by their field `k`, written in this order (so their
/// ids, UUIDv7, sort in it too) a second apart: numbers and numeric strings, a boolean, a
/// null and a missing `n`; strings with `%`, `_` and a non-ASCII capital; an object field.
fn documents() -> Vec<serde_json::Value> {
    vec![
        json!({"k": "a", "n": 1, "s": "apple", "tag": "x%y"}),
        json!({"k": "b", "n": 5, "s": "Banana", "tag": "x_y"}),
        json!({"k": "c", "s": "cherry", "flag": true, "tag": "xay"}),
        json!({"k": "d", "n": "5", "s": "date", "flag": false}),
        json!({"k": "e", "n": null, "s": "Éclair", "addr": {"city": "Oslo"}}),
        json!({"k": "f", "n": 2.5, "s": "fig", "addr": {"city": "Bergen"}}),
        json!({"k": "g", "n": true, "s": "grape"}),
    ]
}

/// Writes [`documents`] (and then updates the first), a deleted document and one of another type that would match most
/// filters; returns the ids of the documents, in order.
async fn setup(s: &dyn Storage) -> Vec<DocumentId> {
    let mut ids = Vec::new();
    for (i, doc) in documents().into_iter().enumerate() {
        let id = DocumentId::new_v7();
        let at = 1_000 * (i as u64 + 1);
        s.local_write(&ship(), &create(id, doc), Hlc::default(), at)
            .await
            .unwrap();
        ids.push(id);
    }
    // A later write moves `a`'s updatedAt, never its createdAt.
    s.local_write(&ship(), &update(ids[0], json!({"u": 1})), Hlc::default(), 9_000)
        .await
        .unwrap();
    let gone = DocumentId::new_v7();
    let everything = json!({"k": "deleted", "n": 1, "s": "apple", "tag": "%_"});
    s.local_write(&ship(), &create(gone, everything.clone()), Hlc::default(), 1)
        .await
        .unwrap();
    s.local_write(&ship(), &delete(gone), Hlc::default(), 2)
        .await
        .unwrap();
    let other = LocalWrite::Create {
        content_type: ContentType::new("api::other.other").unwrap(),
        id: DocumentId::new_v7(),
        fields: fields(everything),
    };
    s.local_write(&ship(), &other, Hlc::default(), 3).await.unwrap();
    ids
}

/// The `k` of each document `query` lists, in its order, and the count it gives.
async fn keys(s: &dyn Storage, query: &DocumentQuery, page: Page) -> (String, u64) {
    let (docs, total) = s.find_documents(&ct(), query, page).await.unwrap();
    let keys = docs
        .iter()
        .map(|d| d.fields["k"].as_str().unwrap().to_owned())
        .collect::<String>();
    (keys, total)
}

fn field(path: &str) -> Member {
    Member::Field(path.split('.').map(str::to_owned).collect())
}

fn t(path: &str, test: Test) -> Filter {
    Filter::Test(field(path), test)
}

fn text(path: &str, how: TextTest, operand: &str, case: Case) -> Filter {
    t(path, Test::Text(how, operand.into(), case))
}

fn not(f: Filter) -> Filter {
    Filter::Not(Box::new(f))
}

fn eq(path: &str, v: &str) -> Filter {
    t(path, Test::Eq(v.into()))
}

fn list(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

pub async fn every_filter_operator_selects_what_it_documents(s: &dyn Storage) {
    use Case::{Insensitive as I, Sensitive as S};
    use TextTest::{Contains, EndsWith, Equals, StartsWith};
    let ids = setup(s).await;
    let cases: Vec<(&str, Filter, &str)> = vec![
        ("$eq a number", eq("n", "1"), "a"),
        ("$eq a number written as a decimal", eq("n", "1.0"), "a"),
        ("$eq a number and a numeric string", eq("n", "5"), "bd"),
        ("$eq a boolean", eq("n", "true"), "g"),
        ("$eq false is not a missing field", eq("flag", "false"), "d"),
        ("$eq a string", eq("s", "apple"), "a"),
        ("$eq tells case", eq("s", "APPLE"), ""),
        ("$eqi", text("s", Equals, "APPLE", I), "a"),
        ("$nei", not(text("s", Equals, "banana", I)), "acdefg"),
        ("$ne holds where the field is missing", not(eq("n", "5")), "acefg"),
        (
            "$lt numbers by value, strings as text",
            t("n", Test::Lt("5".into())),
            "af",
        ),
        ("$lte", t("n", Test::Lte("5".into())), "abdf"),
        ("$gt", t("n", Test::Gt("2".into())), "bdf"),
        (
            "$gte: \"5\" ≥ \"10\" as text",
            t("n", Test::Gte("10".into())),
            "d",
        ),
        ("$in", t("n", Test::In(list(&["1", "10", "true"]))), "ag"),
        ("$in of nothing", t("n", Test::In(Vec::new())), ""),
        ("$notIn", not(t("n", Test::In(list(&["1", "5"])))), "cefg"),
        ("$between", t("n", Test::Between("2".into(), "5".into())), "bdf"),
        ("$contains a % is no wildcard", text("tag", Contains, "%", S), "a"),
        ("$contains a _ is no wildcard", text("tag", Contains, "_", S), "b"),
        ("$contains tells case", text("s", Contains, "AN", S), ""),
        ("$containsi", text("s", Contains, "AN", I), "b"),
        ("$containsi folds ASCII only", text("s", Contains, "écl", I), ""),
        (
            "$notContains holds where the field is missing",
            not(text("tag", Contains, "%", S)),
            "bcdefg",
        ),
        ("$notContainsi", not(text("s", Contains, "A", I)), "cf"),
        ("$contains reads strings only", text("n", Contains, "1", S), ""),
        ("$startsWith", text("s", StartsWith, "B", S), "b"),
        ("$startsWith tells case", text("s", StartsWith, "b", S), ""),
        ("$startsWithi", text("s", StartsWith, "b", I), "b"),
        ("$endsWith", text("s", EndsWith, "rry", S), "c"),
        ("$endsWithi", text("s", EndsWith, "RRY", I), "c"),
        (
            "$endsWith nothing holds for every string",
            text("s", EndsWith, "", S),
            "abcdefg",
        ),
        (
            "$endsWith longer than the string",
            text("s", EndsWith, "xapple", S),
            "",
        ),
        ("$null: missing or null", t("n", Test::Null), "ce"),
        ("$notNull", not(t("n", Test::Null)), "abdfg"),
        ("a member of an object field", eq("addr.city", "Oslo"), "e"),
        (
            "$null inside a missing object",
            t("addr.city", Test::Null),
            "abcdg",
        ),
        ("$or", Filter::Any(vec![eq("n", "1"), eq("s", "fig")]), "af"),
        (
            "$and",
            Filter::All(vec![t("n", Test::Gt("1".into())), t("n", Test::Lt("6".into()))]),
            "bdf",
        ),
        (
            "$not of an $or with a null",
            not(Filter::Any(vec![t("n", Test::Null), eq("n", "5")])),
            "afg",
        ),
        (
            "$and inside $or inside $not",
            not(Filter::Any(vec![
                Filter::All(vec![eq("flag", "true"), eq("s", "cherry")]),
                eq("k", "a"),
            ])),
            "bdefg",
        ),
        ("nothing to hold", Filter::Any(Vec::new()), ""),
        ("nothing to fail", Filter::All(Vec::new()), "abcdefg"),
        (
            "documentId",
            Filter::Test(
                Member::DocumentId,
                Test::In(vec![ids[1].to_string(), ids[4].to_string()]),
            ),
            "be",
        ),
        (
            "documentId is never null",
            Filter::Test(Member::DocumentId, Test::Null),
            "",
        ),
        (
            "updatedAt",
            Filter::Test(Member::UpdatedAt, Test::Between("2000".into(), "4000".into())),
            "bcd",
        ),
        (
            "createdAt",
            Filter::Test(Member::CreatedAt, Test::Lt("2000".into())),
            "a",
        ),
        (
            "updatedAt after a later write",
            Filter::Test(Member::UpdatedAt, Test::Gt("8000".into())),
            "a",
        ),
        (
            "version",
            Filter::Test(Member::Version, Test::Eq("0".into())),
            "abcdefg",
        ),
        (
            "a version that is no number",
            Filter::Test(Member::Version, Test::Eq("x".into())),
            "",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, filter, expected) in cases {
        let query = DocumentQuery {
            filter: Some(filter),
            sort: Vec::new(),
            ..Default::default()
        };
        let (got, total) = keys(s, &query, Page::all()).await;
        if got != expected || total != expected.len() as u64 {
            wrong.push(format!("{name}: got {got:?} ({total}), expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

pub async fn sorts_order_by_type_then_value_then_id(s: &dyn Storage) {
    setup(s).await;
    let key = |path: &str, descending| SortKey {
        member: field(path),
        descending,
    };
    let cases: Vec<(&str, Vec<SortKey>, &str)> = vec![
        ("no keys: by document id", Vec::new(), "abcdefg"),
        (
            "null and missing, booleans, numbers, strings",
            vec![key("n", false)],
            "cegafbd",
        ),
        (
            "descending reverses all but the ties",
            vec![key("n", true)],
            "dbfagce",
        ),
        ("strings byte by byte", vec![key("s", false)], "bacdfge"),
        ("two keys", vec![key("flag", true), key("s", true)], "cdegfab"),
        (
            "updatedAt",
            vec![SortKey {
                member: Member::UpdatedAt,
                descending: true,
            }],
            "agfedcb",
        ),
        (
            "createdAt",
            vec![SortKey {
                member: Member::CreatedAt,
                descending: true,
            }],
            "gfedcba",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, sort, expected) in cases {
        let query = DocumentQuery {
            filter: None,
            sort,
            ..Default::default()
        };
        let (got, _) = keys(s, &query, Page::all()).await;
        if got != expected {
            wrong.push(format!("{name}: got {got:?}, expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let query = DocumentQuery {
        filter: Some(t("n", Test::Gt("1".into()))),
        sort: vec![key("n", false)],
        ..Default::default()
    };
    let page = Page { offset: 1, limit: 1 };
    assert_eq!(
        keys(s, &query, page).await,
        ("b".to_owned(), 3),
        "a page of a filtered sort"
    );
    let uncounted = DocumentQuery {
        uncounted: true,
        ..query
    };
    assert_eq!(
        keys(s, &uncounted, page).await,
        ("b".to_owned(), 0),
        "the same page, not counted"
    );
}

pub async fn a_string_holding_a_nul_fails_no_query(s: &dyn Storage) {
    for (k, text) in [("y", "ab"), ("z", "a\u{0}b")] {
        let doc = create(DocumentId::new_v7(), json!({"k": k, "s": text}));
        s.local_write(&ship(), &doc, Hlc::default(), 1).await.unwrap();
    }
    let sorted = |filter| DocumentQuery {
        filter: Some(filter),
        sort: vec![SortKey {
            member: field("s"),
            descending: false,
        }],
        ..Default::default()
    };
    let (got, _) = keys(s, &sorted(eq("s", "ab")), Page::all()).await;
    assert_eq!(got, "y");
    let (got, total) = keys(
        s,
        &sorted(text("s", TextTest::Contains, "a", Case::Sensitive)),
        Page::all(),
    )
    .await;
    assert_eq!((got.len(), total), (2, 2), "{got}");
    let (got, _) = keys(s, &sorted(eq("s", "a\u{0}b")), Page::all()).await;
    assert_eq!(got, "", "an operand holding a NUL matches nothing");
}

pub async fn any_field_name_is_read_alike(s: &dyn Storage) {
    let docs = [
        json!({"k": "p", "a\\b": 1, "title": "plain", "x\\": 2}),
        json!({"k": "q", "t": {"q\"": {"b": 1}}, "title": "{\"q\\\"\":{\"b\":1}}"}),
        json!({"k": "r", "dotted.name": 3, "sp ace": "x"}),
    ];
    for doc in docs {
        s.local_write(&ship(), &create(DocumentId::new_v7(), doc), Hlc::default(), 1)
            .await
            .unwrap();
    }
    let path = |names: &[&str]| Member::Field(names.iter().map(|n| (*n).to_owned()).collect());
    let cases: Vec<(&str, Member, &str, &str)> = vec![
        ("a backslash", path(&["a\\b"]), "1", "p"),
        ("a trailing backslash", path(&["x\\"]), "2", "p"),
        ("a quote two levels down", path(&["t", "q\"", "b"]), "1", "q"),
        (
            "through a string that holds JSON",
            path(&["title", "q\"", "b"]),
            "1",
            "",
        ),
        ("a dot", path(&["dotted.name"]), "3", "r"),
        ("a space", path(&["sp ace"]), "x", "r"),
    ];
    let mut wrong = Vec::new();
    for (name, member, value, expected) in cases {
        let query = DocumentQuery {
            filter: Some(Filter::Test(member.clone(), Test::Eq(value.into()))),
            sort: vec![SortKey {
                member,
                descending: true,
            }],
            ..Default::default()
        };
        match s.find_documents(&ct(), &query, Page::all()).await {
            Ok((docs, _)) => {
                let got: String = docs.iter().map(|d| d.fields["k"].as_str().unwrap()).collect();
                if got != expected {
                    wrong.push(format!("{name}: got {got:?}, expected {expected:?}"));
                }
            }
            Err(e) => wrong.push(format!("{name}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
