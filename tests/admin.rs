//! The admin page in a real, headless Chromium (Debian's `chromium` driven by
//! `chromium-driver`), against real `master` and `replica` processes: a PostgreSQL master,
//! SQLite ships and a tansu broker. The browser reaches nothing but 127.0.0.1, and its log of
//! requests shows the page asked no other host for anything.
//!
//! Screenshots land in `target/admin-screenshots/`; the current ones are committed as
//! `docs/admin-*.png`.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use offline_sync::kafka::testing::Tansu;
use serde_json::{Value, json};
use support::browser::{Browser, PAGE_WAIT};
use support::process::{ADMIN, Node, READ, eventually, request};

const CT: &str = "api::article.article";
const WAIT: Duration = Duration::from_secs(60);

use support::process::{master_with_tokens as master, replica_with_tokens as replica};

fn doc(node: &Node, id: &str) -> Option<Value> {
    let a = node.call("GET", &format!("/api/documents/{CT}/{id}"), None);
    (a.status == 200).then(|| a.json()["data"].clone())
}

/// Signs in on the page with `token`.
fn sign_in(b: &Browser, token: &str) {
    let input = b.wait_for("#token", PAGE_WAIT);
    b.clear(&input);
    b.type_into(&input, token);
    b.click_on("#sign-in");
}

/// Signs in with the read token and opens the summary.
fn sign_in_to_read(b: &Browser) {
    sign_in(b, READ);
    b.wait_for("body[data-role='read'][data-ready]", PAGE_WAIT);
    b.click_on("a[data-view='summary']");
}

fn sign_out(b: &Browser) {
    b.click_on("#logout");
    b.wait_for("#login:not([hidden])", PAGE_WAIT);
}

/// Every request the page made went to `origin`.
fn only_the_node_was_asked(b: &Browser, origin: &str) {
    let urls = b.requests();
    assert!(!urls.is_empty(), "the browser logged no request at all");
    let elsewhere: Vec<_> = urls
        .iter()
        .filter(|u| !u.starts_with(&format!("{origin}/")))
        .collect();
    assert!(elsewhere.is_empty(), "the page asked other hosts: {elsewhere:?}");
    assert!(
        !urls.iter().any(|u| u.contains(ADMIN) || u.contains(READ)),
        "a token in a URL: {urls:?}"
    );
}

/// Writes `data` to the document at `path` on the ship and on the master, each side its own;
/// the id of the conflict that makes, which the master lists first, once it is past `after`.
fn conflict(ship: (&Node, Value), master: (&Node, Value), path: &str, after: u64, what: &str) -> u64 {
    let onshore = master.0;
    for (node, data) in [ship, master] {
        let put = node.call("PUT", path, Some(&json!({ "data": data })));
        assert_eq!(put.status, 200, "{}", put.body);
    }
    let mut id = 0;
    assert!(
        eventually(WAIT, || {
            let open = onshore.call("GET", "/api/offline-sync/conflicts", None).json();
            id = open["data"][0]["id"].as_u64().unwrap_or(0);
            id > after
        }),
        "{what}"
    );
    id
}

/// Copies the screenshot into `docs/` as the current one.
fn publish(shot: &Path, name: &str) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(shot, docs.join(format!("admin-{name}.png"))).unwrap();
}

/// An operator onshore: a wrong token shows an error and no data; the admin token shows the
/// fleet, a ship coming online, a same-field conflict side by side, merged by picking one
/// field from the ship and one from the master; every node then holds the merged document
/// and the audit trail says who resolved it and how. Dead letters are retried and discarded
/// from the page. With the read token no action is offered, and a forged resolve is refused.
#[test]
fn an_operator_sees_the_fleet_and_merges_a_conflict_in_the_browser() {
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path(), &broker.address(), "admin_page");
    let origin = m.url("");
    // Ship A pushes slowly, so its edit and the master's are concurrent.
    let a = replica(
        dir.path(),
        &broker.address(),
        "ship-a",
        &[("SYNC_DEBOUNCE_MS", "1500".into())],
    );

    let b = Browser::start();
    b.goto(&m.url("/admin"));

    // A wrong token: an error, and no data.
    sign_in(&b, "not-the-token");
    let error = b.wait_for("#login-error:not([hidden])", PAGE_WAIT);
    assert!(b.text(&error).contains("not valid"), "{}", b.text(&error));
    assert!(b.find("#app[hidden]").is_some(), "the app stays hidden");
    assert!(b.find("[data-ship]").is_none() && b.find("#view table").is_none());

    // The admin token: the summary, then the fleet with ship A online.
    sign_in(&b, ADMIN);
    b.wait_for("body[data-ready='summary']", PAGE_WAIT);
    b.wait_for("#changes-chart svg", PAGE_WAIT);
    assert!(
        b.script("return sessionStorage.length").as_u64() == Some(1) && !b.page_text().contains(ADMIN),
        "the token is kept for the tab and never shown"
    );
    b.click_on("a[data-view='fleet']");
    b.wait_for("tr[data-ship='ship-a'][data-status='online']", WAIT);

    // A ship that comes online while the operator watches appears without a reload.
    let c = replica(dir.path(), &broker.address(), "ship-c", &[]);
    b.wait_for("tr[data-ship='ship-c'][data-status='online']", WAIT);
    let fleet = b.screenshot("admin-fleet");

    // A same-field conflict made through the document API: two fields changed on ship A and
    // on the master before ship A's change arrives.
    let id = a.create_article(json!({"title": "Hello", "body": "first", "tag": "news"}));
    // Ship A has its create back from the master: its edit has that version as its base.
    assert!(eventually(WAIT, || {
        doc(&m, &id).is_some()
            && doc(&c, &id).is_some()
            && doc(&a, &id).is_some_and(|d| d["version"].as_u64() > Some(0))
    }));
    let path = format!("/api/documents/{CT}/{id}");
    let cid = conflict(
        (&a, json!({"title": "Ship title", "body": "Ship body"})),
        (&m, json!({"title": "Master title", "body": "Master body"})),
        &path,
        0,
        "no conflict recorded",
    );

    // Filtered by ship, opened, compared side by side.
    b.click_on("a[data-view='conflicts']");
    b.wait_for(&format!("tr[data-conflict='{cid}']"), WAIT);
    b.type_on("#filter-type", "api::crew.crew");
    b.click_on("#conflict-filters button[type='submit']");
    b.wait_until(PAGE_WAIT, "the content type filter", |b| {
        b.find(&format!("tr[data-conflict='{cid}']")).is_none() && b.find("#open-conflicts .empty").is_some()
    });
    b.goto(&m.url("/admin#conflicts?ship=ship-a"));
    b.wait_for(&format!("tr[data-conflict='{cid}']"), WAIT);
    b.click_on(&format!("a[data-open='{cid}']"));
    b.wait_for("#compare", PAGE_WAIT);
    let row = |field: &str, column: &str| {
        b.text(&b.wait_for(&format!("tr[data-field='{field}'] td.{column}"), PAGE_WAIT))
    };
    assert_eq!(row("title", "base"), "\"Hello\"", "the base value is shown");
    assert_eq!(row("title", "ship"), "\"Ship title\"");
    assert_eq!(row("title", "master"), "\"Master title\"");
    assert_eq!(row("body", "base"), "\"first\"");
    assert!(
        b.find("tr.conflicting[data-field='title']").is_some()
            && b.find("tr.conflicting[data-field='tag']").is_none(),
        "only the conflicting fields are highlighted"
    );

    // Title from the ship, body from the master, by clicking; confirmed after the preview.
    b.click_on("button.pick[data-side='ship'][data-field='title']");
    b.click_on("button.pick[data-side='master'][data-field='body']");
    let shot = b.screenshot("admin-conflict");
    b.click_on("#merge");
    let preview = b.wait_for("#confirm[open] #confirm-document", PAGE_WAIT);
    let shown: Value = serde_json::from_str(&b.text(&preview)).unwrap();
    assert_eq!(
        (&shown["title"], &shown["body"], &shown["tag"]),
        (&json!("Ship title"), &json!("Master body"), &json!("news")),
        "the confirmation shows the resulting document"
    );
    b.click_on("#confirm-apply");
    b.wait_until(WAIT, "the resolution", |b| {
        b.find("#notice:not([hidden])")
            .is_some_and(|n| b.text(&n).contains(&format!("Conflict #{cid} resolved")))
    });

    let resolved = m
        .call("GET", &format!("/api/offline-sync/conflicts/{cid}"), None)
        .json();
    assert_eq!(resolved["data"]["status"], "resolved");
    assert_eq!(resolved["data"]["resolutionStrategy"], "merge");
    let audit = m.call("GET", "/api/offline-sync/audit", None).json();
    let entry = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "resolve" && e["target"] == format!("conflict {cid}"))
        .unwrap_or_else(|| panic!("no audit entry: {audit}"))
        .clone();
    assert_eq!(
        (entry["role"].as_str(), entry["detail"]["strategy"].as_str()),
        (Some("admin"), Some("merge"))
    );
    for node in [&m, &a, &c] {
        assert!(
            eventually(WAIT, || doc(node, &id).is_some_and(|d| {
                d["title"] == "Ship title" && d["body"] == "Master body" && d["tag"] == "news"
            })),
            "{} never got the merged document: {:?}",
            node.name,
            doc(node, &id)
        );
    }
    b.wait_for("#audit-resolve tr td", PAGE_WAIT);
    assert!(
        b.page_text().contains(&format!("conflict {cid}")),
        "the audit trail is on the page"
    );

    // Dead letters: two records that are not envelopes, retried and discarded on the page.
    for junk in ["not an envelope", "neither is this"] {
        support::librdkafka::produce(&broker.address(), "ship-updates", "junk", junk.as_bytes());
    }
    let letters = || m.call("GET", "/api/offline-sync/dead-letters", None).json()["data"].clone();
    assert!(
        eventually(WAIT, || letters().as_array().unwrap().len() >= 2),
        "no dead letters"
    );
    let ids: Vec<u64> = letters()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    b.click_on("a[data-view='dead-letters']");
    b.click_on(&format!(
        "tr[data-dead-letter='{}'] button[data-action='retry']",
        ids[0]
    ));
    b.wait_until(PAGE_WAIT, "the retry's answer", |b| {
        b.find("#banner:not([hidden])")
            .is_some_and(|n| b.text(&n).contains("still fails"))
    });
    b.click_on(&format!(
        "tr[data-dead-letter='{}'] button[data-action='discard']",
        ids[1]
    ));
    b.click_on("#confirm[open] #confirm-apply");
    b.wait_for(
        &format!("tr[data-dead-letter='{}'][data-status='discarded']", ids[1]),
        PAGE_WAIT,
    );
    let discarded = m
        .call("GET", &format!("/api/offline-sync/dead-letters/{}", ids[1]), None)
        .json();
    assert_eq!(discarded["data"]["status"], "discarded");
    assert!(
        b.find(&format!(
            "tr[data-dead-letter='{}'] button[data-action='discard']",
            ids[0]
        ))
        .is_some(),
        "the letter that still fails waits for another try"
    );
    only_the_node_was_asked(&b, origin.trim_end_matches('/'));

    // A second conflict, left open for the read token to look at.
    let open = conflict(
        (&a, json!({"tag": "ship tag"})),
        (&m, json!({"tag": "master tag"})),
        &path,
        cid,
        "no second conflict",
    );

    // The read token: the same views without a single action.
    let no_action = "button[data-action], #resolve-actions, #merge, #keep-ship, #keep-master, \
                     #push-now, input.result, button.pick:not([disabled])";
    sign_out(&b);
    sign_in_to_read(&b);
    b.wait_for(
        "body[data-role='read'][data-ready='summary'] #changes-chart",
        PAGE_WAIT,
    );
    b.click_on("a[data-view='fleet']");
    b.wait_for("body[data-ready='fleet'] tr[data-ship='ship-a']", PAGE_WAIT);
    assert!(b.find(no_action).is_none(), "no decommission for a read token");
    b.goto(&m.url(&format!("/admin#conflict/{open}")));
    b.wait_for(
        "#compare tr[data-field='tag'] button.pick[data-side='ship']",
        PAGE_WAIT,
    );
    assert!(
        b.find(no_action).is_none(),
        "an open conflict cannot be resolved with a read token"
    );
    b.click_on("a[data-view='dead-letters']");
    b.wait_for(&format!("tr[data-dead-letter='{}']", ids[0]), PAGE_WAIT);
    assert!(
        b.find(no_action).is_none(),
        "no retry or discard for a read token"
    );
    let forged = request(
        "POST",
        &m.url(&format!("/api/offline-sync/conflicts/{open}/resolve")),
        Some(READ),
        Some(&json!({"strategy": "keep-master"})),
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let still = m
        .call("GET", &format!("/api/offline-sync/conflicts/{open}"), None)
        .json();
    assert_eq!(still["data"]["status"], "open");
    only_the_node_was_asked(&b, origin.trim_end_matches('/'));

    publish(&fleet, "fleet");
    publish(&shot, "conflict");
}

/// A crew on the bridge: the replica page shows the link, the outbox by state with its newest
/// rows, the resync state and the ship's own dead letters, and its buttons push, pull and
/// resync.
#[test]
fn a_crew_sees_its_ship_and_acts_on_the_replica_page() {
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _master = master(dir.path(), &broker.address(), "admin_replica_page");
    let s = replica(dir.path(), &broker.address(), "ship-b", &[]);
    for i in 0..3 {
        let created = s.call(
            "POST",
            &format!("/api/documents/{CT}"),
            Some(&json!({"data": {"title": format!("Log entry {i}")}})),
        );
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let acked = || s.call("GET", "/api/offline-sync/status", None).json()["data"]["acked"].as_u64();
    assert!(
        eventually(WAIT, || acked() == Some(3)),
        "the master never answered"
    );
    support::librdkafka::produce(&broker.address(), "master-updates", "junk", b"not a commit");
    assert!(
        eventually(WAIT, || {
            !s.call("GET", "/api/offline-sync/dead-letters", None).json()["data"]
                .as_array()
                .unwrap()
                .is_empty()
        }),
        "the ship kept no dead letter"
    );

    let b = Browser::start();
    b.goto(&s.url("/admin"));
    sign_in(&b, ADMIN);
    b.wait_for("body[data-ready='summary'] #outbox-acked", PAGE_WAIT);
    b.wait_until(WAIT, "the outbox counts", |b| {
        b.find("#outbox-acked").is_some_and(|c| b.text(&c).contains('3'))
            && b.find("#link-card")
                .is_some_and(|c| b.text(&c).contains("online"))
    });
    assert_eq!(b.find_all("#outbox tbody tr").len(), 3, "the newest rows");
    let tallest = b.script(
        "return Math.max(...[...document.querySelectorAll('#changes-chart rect.bar')]\
         .map(r => Number(r.getAttribute('height'))))",
    );
    assert!(
        tallest.as_f64().is_some_and(|h| h > 0.0),
        "the writes of this minute are drawn: {tallest}"
    );
    let shot = b.screenshot("admin-replica");

    b.click_on("#push-now");
    b.wait_until(PAGE_WAIT, "push now", |b| {
        b.find("#notice:not([hidden])")
            .is_some_and(|n| b.text(&n).contains("Sent"))
    });
    b.click_on("#pull-now");
    b.wait_until(PAGE_WAIT, "pull now", |b| {
        b.find("#notice:not([hidden])")
            .is_some_and(|n| b.text(&n).contains("Applied"))
    });
    b.click_on("#resync-now");
    b.click_on("#confirm[open] #confirm-apply");
    b.wait_until(PAGE_WAIT, "the resync", |b| {
        b.find("#notice:not([hidden])")
            .is_some_and(|n| b.text(&n).contains("Resync asked for"))
    });
    let audit = s.call("GET", "/api/offline-sync/audit", None).json();
    for action in ["push", "pull", "resync"] {
        assert!(
            audit["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action),
            "no {action} in the audit log: {audit}"
        );
    }

    b.click_on("a[data-view='dead-letters']");
    b.wait_for(
        "#dead-letters tr[data-dead-letter] button[data-action='discard']",
        PAGE_WAIT,
    );
    only_the_node_was_asked(&b, s.url("").trim_end_matches('/'));

    sign_out(&b);
    sign_in_to_read(&b);
    b.wait_for(
        "body[data-role='read'][data-ready='summary'] #outbox-acked",
        PAGE_WAIT,
    );
    assert!(
        b.find("#push-now, #pull-now, #resync-now, button[data-action]")
            .is_none(),
        "a read token is offered no action"
    );
    publish(&shot, "replica");
}
