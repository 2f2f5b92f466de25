// The admin page of offline-sync. Plain JavaScript, no library and no build step: the node
// serves this file as it is. Everything shown comes from the node's API, called with the
// token the operator typed, kept in this tab's session storage only (never in a URL).
// Pages are built with DOM calls: text from the API is never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "offline-sync-token";
  const REFRESH_MS = 5000;
  const API = "/api/offline-sync";

  let session = null;
  let timer = null;
  let drawing = 0;

  // ---- small helpers -------------------------------------------------------------------

  /** An element with attributes (`on…` functions become listeners) and children. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    append(el, children);
    return el;
  }

  const $ = (id) => document.getElementById(id);

  function pad(n) { return String(n).padStart(2, "0"); }

  /** `2026-12-06 16:40:12 UTC`. */
  function utc(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }

  /** `3 min ago`, `in 20 s`. */
  function ago(iso) {
    if (!iso) return "";
    const ms = Date.now() - new Date(iso).getTime();
    if (Number.isNaN(ms)) return "";
    return `${duration(Math.abs(ms))} ${ms >= 0 ? "ago" : "from now"}`;
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s} s`;
    const m = Math.round(s / 60);
    if (m < 60) return `${m} min`;
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return `${hrs} h ${m % 60} min`;
    return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
  }

  /** A time cell: UTC with the relative age beneath it. */
  function when(iso) {
    return h("time", { datetime: iso || "" }, utc(iso), iso ? h("span", { class: "age" }, ago(iso)) : null);
  }

  function bytes(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  }

  const clip = (text, most) => (text.length > most ? `${text.slice(0, most - 1)}…` : text);
  const number = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));
  const badge = (text, kind) => h("span", { class: `badge ${kind || text}` }, text);
  const json = (v) => (v === undefined ? "(absent)" : JSON.stringify(v, null, 2));

  function card(label, value, sub, id) {
    return h("div", { class: "card", id },
      h("div", { class: "label" }, label),
      h("div", { class: "value" }, value),
      sub ? h("div", { class: "sub" }, sub) : null);
  }

  function table(headers, rows, empty) {
    if (!rows.length) return h("p", { class: "empty" }, empty);
    return h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", class: x.num ? "num" : null }, x.label || x)))),
      h("tbody", {}, rows));
  }

  // ---- the API -------------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, options) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const opts = Object.assign({ method: "GET" }, options || {});
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(path, { method: opts.method, headers, body: opts.body, cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new ApiFailure(0, "network", "the node did not answer (is the link down?)");
    }
    let body = null;
    const type = res.headers.get("Content-Type") || "";
    if (type.includes("json")) body = await res.json().catch(() => null);
    else body = await res.text();
    if (!res.ok) {
      const err = body && body.error ? body.error : {};
      throw new ApiFailure(res.status, err.code || String(res.status), err.message || res.statusText);
    }
    return body;
  }

  function showError(e) {
    if (e instanceof ApiFailure && e.status === 401) {
      signOut("This token is no longer accepted by this node. Sign in again.");
      return;
    }
    const banner = $("banner");
    banner.textContent = e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e.message || e);
    banner.hidden = false;
  }

  function clearError() { $("banner").hidden = true; }

  function notify(text) {
    const n = $("notice");
    n.textContent = text;
    n.hidden = false;
    setTimeout(() => { if (n.textContent === text) n.hidden = true; }, 6000);
  }

  /** Runs an admin action from a button: disables it meanwhile, reports, redraws unless
   * `redraw` is false; resolves to whether it succeeded. */
  async function act(button, work, done, redraw) {
    button.disabled = true;
    clearError();
    try {
      const out = await work();
      if (done) notify(done(out));
      if (redraw !== false) await draw();
      return true;
    } catch (e) {
      showError(e);
      return false;
    } finally {
      button.disabled = false;
    }
  }

  /** Asks for a confirmation, showing `doc` when given; resolves to true on Apply. */
  function confirmAction(title, text, doc) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    const pre = $("confirm-document");
    pre.hidden = doc === undefined;
    pre.textContent = doc === undefined ? "" : json(doc);
    return new Promise((resolve) => {
      const finish = (answer) => {
        $("confirm-apply").removeEventListener("click", yes);
        $("confirm-cancel").removeEventListener("click", no);
        dialog.removeEventListener("cancel", no);
        dialog.close();
        // A refresh due while the dialog was open waited for it.
        if (!answer && session && route().live) draw(false);
        resolve(answer);
      };
      const yes = () => finish(true);
      const no = (ev) => { if (ev) ev.preventDefault(); finish(false); };
      $("confirm-apply").addEventListener("click", yes);
      $("confirm-cancel").addEventListener("click", no);
      dialog.addEventListener("cancel", no);
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  // ---- metrics -------------------------------------------------------------------------

  /** The samples of a Prometheus text, by name and labels. */
  function parseMetrics(text) {
    const out = [];
    for (const line of String(text).split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/);
      if (!m) continue;
      const labels = {};
      for (const pair of (m[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
      out.push({ name: m[1], labels, value: Number(m[4]) });
    }
    return out;
  }

  function metric(samples, name, labels) {
    let total = null;
    for (const s of samples) {
      if (s.name !== name) continue;
      if (labels && !Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
      total = (total || 0) + s.value;
    }
    return total;
  }

  /** The changes-per-minute chart, drawn as SVG bars. */
  function chart(minutes) {
    const width = 600;
    const height = 140;
    const top = 10;
    const bottom = 20;
    const max = Math.max(1, ...minutes.map((m) => m.changes));
    const step = width / minutes.length;
    const total = minutes.reduce((a, m) => a + m.changes, 0);
    const el = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img",
      "aria-label": `Changes per minute over the last hour: ${total} in all, at most ${max} in one minute` });
    el.append(svg("line", { class: "axis", x1: 0, y1: height - bottom, x2: width, y2: height - bottom }));
    minutes.forEach((m, i) => {
      const bar = ((height - top - bottom) * m.changes) / max;
      const rect = svg("rect", { class: "bar", x: i * step + 1, y: height - bottom - bar, width: Math.max(1, step - 2), height: bar });
      rect.append(svg("title", {}, `${utc(m.at)}: ${m.changes} changes`));
      el.append(rect);
    });
    el.append(svg("text", { x: 0, y: height - 5 }, "60 min ago"));
    el.append(svg("text", { x: width, y: height - 5, "text-anchor": "end" }, "now"));
    el.append(svg("text", { x: 2, y: top + 2 }, `${max}/min`));
    return el;
  }

  async function summaryCards() {
    const [stats, metricsText] = await Promise.all([api(`${API}/stats`), api("/metrics")]);
    const samples = parseMetrics(metricsText);
    const sum = metric(samples, "offline_sync_apply_duration_seconds_sum");
    const count = metric(samples, "offline_sync_apply_duration_seconds_count");
    const processed = metric(samples, "offline_sync_messages_total", { status: "processed" });
    const failed = metric(samples, "offline_sync_messages_total", { status: "failed" });
    const cards = h("div", { class: "cards", id: "summary-cards" },
      card("Messages processed", number(processed ?? stats.data.messages.processed), "since the node started", "messages-processed"),
      card("Messages failed", number(failed ?? stats.data.messages.failed), "kept as dead letters", "messages-failed"),
      card("Bytes sent", bytes(metric(samples, "offline_sync_transport_sent_bytes_total")), "envelopes to the broker"),
      card("Bytes received", bytes(metric(samples, "offline_sync_transport_received_bytes_total")), "envelopes from the broker"),
      card("Apply latency", count ? `${((sum / count) * 1000).toFixed(1)} ms` : "—", count ? `mean over ${number(count)} batches` : "no batch applied yet"));
    const panel = h("div", { class: "panel", id: "changes-chart" },
      h("h3", {}, "Changes per minute, last hour"), chart(stats.data.changesPerMinute));
    return [cards, panel];
  }

  // ---- views ---------------------------------------------------------------------------

  const canWrite = () => session && session.canWrite;

  function linkCard(broker, label) {
    const state = broker.online ? "online" : "offline";
    const err = broker.lastError;
    return h("div", { class: "card", id: "link-card" },
      h("div", { class: "label" }, label),
      h("div", { class: "value" }, badge(state)),
      h("div", { class: "sub" }, broker.since ? ["since ", utc(broker.since), ` (${ago(broker.since)})`] : "no call to the broker yet"),
      err ? h("div", { class: "sub error", id: "last-error", title: err.message },
        `Last error, ${ago(err.at)} during ${err.step}: ${clip(err.message, 160)}`) : null);
  }

  async function masterSummary(view) {
    const status = (await api(`${API}/status`)).data;
    view.append(h("h2", {}, "Summary"),
      h("div", { class: "cards" },
        linkCard(status.broker, "Broker link"),
        card("Last commit", number(status.lastCsn), "CSN"),
        card("Open conflicts", number(status.openConflicts), h("a", { href: "#conflicts" }, "see conflicts")),
        card("Ships online", `${number(status.shipsOnline)} of ${number(status.shipsTotal)}`, h("a", { href: "#fleet" }, "see the fleet"))),
      ...(await summaryCards()));
  }

  async function fleet(view) {
    const ships = (await api(`${API}/ships`)).data;
    const rows = ships.map((s) => {
      const actions = [];
      if (canWrite()) {
        if (s.decommissioned) {
          actions.push(h("button", { type: "button", "data-action": "readmit", onclick: (ev) => act(ev.currentTarget,
            () => api(`${API}/ships/${encodeURIComponent(s.shipId)}/readmit`, { method: "POST" }), () => `${s.shipId} is in service again`) },
          "Re-admit"));
        } else {
          actions.push(h("button", { type: "button", class: "danger", "data-action": "decommission", onclick: async (ev) => {
            const button = ev.currentTarget;
            const ok = await confirmAction(`Decommission ${s.shipId}?`,
              "It stays in the registry but no longer holds the collection of tombstones back. If it comes back it needs a full resync.");
            if (ok) act(button, () => api(`${API}/ships/${encodeURIComponent(s.shipId)}/decommission`, { method: "POST" }), () => `${s.shipId} decommissioned`);
          } }, "Decommission"));
        }
      }
      const state = s.decommissioned ? badge("decommissioned", "muted") : badge(s.status);
      const since = s.online ? s.onlineSince : s.lastSeen;
      return h("tr", { "data-ship": s.shipId, "data-status": s.status },
        h("th", { scope: "row" }, s.shipId),
        h("td", { class: "state" }, state, since ? h("span", { class: "age" }, `${s.online ? "online" : "last seen"} ${ago(since)}`) : null),
        h("td", {}, when(s.lastSeen)),
        h("td", { class: "num" }, number(s.pending)),
        h("td", { class: "num" }, number(s.lagCsn)),
        h("td", { class: "num" }, s.lagMs === null || s.lagMs === undefined ? "—" : duration(s.lagMs)),
        h("td", { class: "num" }, s.oldestUnackedMs === null || s.oldestUnackedMs === undefined ? "—" : duration(s.oldestUnackedMs)),
        h("td", {}, s.resync || "—"),
        h("td", { class: "num" }, number(s.changesRefused), s.lastRefusal ? h("span", { class: "age" }, s.lastRefusal) : null),
        canWrite() ? h("td", {}, actions) : null);
    });
    const headers = ["Ship", "State", "Last seen", { label: "Pending", num: true }, { label: "Lag (CSNs)", num: true },
      { label: "Lag (time)", num: true }, { label: "Oldest unanswered", num: true }, "Resync", { label: "Refused", num: true }];
    if (canWrite()) headers.push("Actions");
    view.append(h("h2", {}, "Fleet"),
      h("div", { class: "panel", id: "fleet" }, table(headers, rows, "No ship has been heard from yet.")));
  }

  function conflictFilters() {
    const p = new URLSearchParams(location.hash.split("?")[1] || "");
    return { ship: p.get("ship") || "", contentType: p.get("contentType") || "" };
  }

  async function conflicts(view) {
    const f = conflictFilters();
    const query = new URLSearchParams({ status: "open", pageSize: "100" });
    if (f.ship) query.set("ship", f.ship);
    if (f.contentType) query.set("contentType", f.contentType);
    const [open, ships] = await Promise.all([api(`${API}/conflicts?${query}`), api(`${API}/ships`)]);
    const shipSelect = h("select", { id: "filter-ship" }, h("option", { value: "" }, "every ship"),
      ships.data.map((s) => h("option", { value: s.shipId, selected: s.shipId === f.ship }, s.shipId)));
    const typeInput = h("input", { id: "filter-type", type: "text", placeholder: "api::article.article", value: f.contentType });
    const apply = (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      if (shipSelect.value) q.set("ship", shipSelect.value);
      if (typeInput.value.trim()) q.set("contentType", typeInput.value.trim());
      location.hash = q.toString() ? `#conflicts?${q}` : "#conflicts";
    };
    const rows = open.data.map((c) => h("tr", { "data-conflict": c.id },
      h("th", { scope: "row" }, h("a", { href: `#conflict/${c.id}`, "data-open": c.id }, `#${c.id}`)),
      h("td", {}, c.shipId),
      h("td", {}, c.contentType, h("span", { class: "age" }, c.documentId)),
      h("td", {}, c.conflictType),
      h("td", {}, c.fields.join(", ")),
      h("td", {}, when(c.createdAt))));
    view.append(h("h2", {}, "Conflicts"),
      h("form", { class: "toolbar", id: "conflict-filters", onsubmit: apply },
        h("label", { for: "filter-ship" }, "Ship"), shipSelect,
        h("label", { for: "filter-type" }, "Content type"), typeInput,
        h("button", { type: "submit" }, "Filter")),
      h("div", { class: "panel", id: "open-conflicts" },
        h("h3", {}, `Open, newest first (${open.meta.pagination.total})`),
        table(["Conflict", "Ship", "Document", "Kind", "Fields", "Raised"], rows, "No open conflict.")),
      await auditPanel("resolve", "Resolved: who, how and when"));
  }

  /** The audit trail, optionally of one action. */
  async function auditPanel(action, title) {
    const log = await api(`${API}/audit?pageSize=100`);
    const entries = log.data.filter((a) => !action || a.action === action);
    const rows = entries.map((a) => h("tr", { "data-audit": a.id },
      h("td", {}, when(a.at)),
      h("td", {}, a.role),
      h("td", {}, a.action),
      h("td", {}, a.target),
      h("td", {}, a.detail && a.detail.strategy ? a.detail.strategy : JSON.stringify(a.detail))));
    return h("div", { class: "panel", id: action ? `audit-${action}` : "audit" }, h("h3", {}, title),
      table(["When", "Who", "Action", "Target", "How"], rows, "Nothing yet."));
  }

  /** The side-by-side view of one conflict, with merge by picking. */
  async function conflictView(view, id) {
    const c = (await api(`${API}/conflicts/${encodeURIComponent(id)}`)).data;
    const doc = await api(`/api/documents/${encodeURIComponent(c.contentType)}/${encodeURIComponent(c.documentId)}`)
      .then((d) => d.data).catch(() => null);
    const conflicting = new Set(c.fields);
    const others = doc ? Object.keys(doc).filter((k) => !conflicting.has(k) && !["documentId", "version", "updatedAt"].includes(k)) : [];
    const choice = {};
    const inputs = {};
    const rows = [];
    const cell = (v, known) => (known ? json(v) : "(not known)");
    for (const f of c.fields) {
      const masterHas = Object.prototype.hasOwnProperty.call(c.masterData, f);
      const input = h("input", { class: "result", type: "text", id: `result-${f}`, "data-field": f,
        "aria-label": `Resulting value of ${f}`, value: masterHas ? JSON.stringify(c.masterData[f]) : "" });
      inputs[f] = input;
      const pick = (side) => h("button", { type: "button", class: "pick", "data-side": side, "data-field": f,
        "aria-pressed": side === "master" ? "true" : "false", disabled: !canWrite(),
        "aria-label": `Take the ${side}'s value of ${f}`,
        onclick: (ev) => {
          choice[f] = side;
          const value = side === "ship" ? c.shipData[f] : c.masterData[f];
          input.value = value === undefined ? "" : JSON.stringify(value);
          for (const b of ev.currentTarget.closest("tr").querySelectorAll("button.pick")) b.setAttribute("aria-pressed", String(b === ev.currentTarget));
        } }, cell(side === "ship" ? c.shipData[f] : c.masterData[f], true));
      input.addEventListener("input", () => {
        choice[f] = "edited";
        for (const b of input.closest("tr").querySelectorAll("button.pick")) b.setAttribute("aria-pressed", "false");
      });
      choice[f] = "master";
      const baseKnown = !(c.baseUnknown || []).includes(f);
      const ownBase = c.fieldBases && c.fieldBases[f] !== undefined ? h("span", { class: "age" }, `at version ${c.fieldBases[f]}`) : null;
      rows.push(h("tr", { class: "conflicting", "data-field": f },
        h("th", { scope: "row" }, f, h("span", { class: "visually-hidden" }, " (conflicting)")),
        h("td", { class: "value-cell base" }, c.baseDeleted ? "(deleted)" : cell(c.baseData ? c.baseData[f] : undefined, baseKnown), ownBase),
        h("td", { class: "value-cell ship" }, c.shipDeleted ? "(deleted by the ship)" : pick("ship")),
        h("td", { class: "value-cell master" }, c.masterDeleted ? "(deleted on the master)" : pick("master")),
        canWrite() ? h("td", { class: "value-cell result" }, input) : null));
    }
    for (const f of others) {
      rows.push(h("tr", { "data-field": f },
        h("th", { scope: "row" }, f),
        h("td", { class: "value-cell" }, "—"),
        h("td", { class: "value-cell" }, "—"),
        h("td", { class: "value-cell" }, json(doc[f])),
        canWrite() ? h("td", { class: "value-cell" }, h("span", { class: "hint" }, "kept")) : null));
    }
    const headers = ["Field", `Base (version ${c.shipVersion})`, `Ship ${c.shipId}`, `Master (version ${c.masterVersion})`];
    if (canWrite()) headers.push("Result");

    const mergeData = () => {
      const out = {};
      for (const f of c.fields) {
        const raw = inputs[f].value;
        if (raw.trim() === "") continue;
        try { out[f] = JSON.parse(raw); } catch (e) { out[f] = raw; }
      }
      return out;
    };
    const resolve = async (button, body, label) => {
      clearError();
      let preview;
      try {
        preview = (await api(`${API}/conflicts/${c.id}/preview`, { method: "POST", body })).data;
      } catch (e) { showError(e); return; }
      const ok = await confirmAction(`Resolve conflict #${c.id}: ${label}`,
        preview.deleted ? "The document will be deleted on the master and on every ship." :
          "The master's document will become this, and every ship will receive it:",
        preview.deleted ? undefined : preview.document);
      if (!ok) return;
      // With the preview's revision: applied only if nothing changed since it was shown.
      const confirmed = Object.assign({ revision: preview.revision }, body);
      const done = await act(button, () => api(`${API}/conflicts/${c.id}/resolve`, { method: "POST", body: confirmed }),
        (out) => `Conflict #${c.id} resolved (${label}) at CSN ${out.data.resolvedCsn}`, false);
      if (done) location.hash = "#conflicts";
    };

    const open = c.status === "open";
    const actions = open && canWrite() ? h("div", { class: "toolbar", id: "resolve-actions" },
      h("button", { type: "button", id: "keep-ship", onclick: (ev) => resolve(ev.currentTarget, { strategy: "keep-ship" }, "keep the ship's values") }, "Keep ship"),
      h("button", { type: "button", id: "keep-master", onclick: (ev) => resolve(ev.currentTarget, { strategy: "keep-master" }, "keep the master's values") }, "Keep master"),
      h("button", { type: "button", id: "merge", class: "primary", onclick: (ev) => resolve(ev.currentTarget, { strategy: "merge", mergeData: mergeData() }, "merge") }, "Merge…"),
      h("span", { class: "hint" }, "Merge: click the ship's or the master's value of each field, or edit the result (JSON; other text is taken as a string).")) : null;

    append(view, [
      h("p", {}, h("a", { href: "#conflicts" }, "← Conflicts")),
      h("h2", {}, `Conflict #${c.id} `, badge(c.status)),
      h("p", {}, `${c.conflictType} on ${c.contentType} ${c.documentId}, raised by ${c.shipId} (seq ${c.shipSeq}) `, when(c.createdAt)),
      c.status === "resolved" ? h("p", {}, `Resolved with ${c.resolutionStrategy} at CSN ${c.resolvedCsn}, `, when(c.resolvedAt)) : null,
      h("div", { class: "panel compare", id: "compare" }, table(headers, rows, "No field.")),
      actions]);
  }

  async function deadLetters(view) {
    const letters = await api(`${API}/dead-letters?pageSize=100`);
    const waiting = (s) => ["pending", "retrying", "exhausted"].includes(s);
    const rows = letters.data.map((d) => h("tr", { "data-dead-letter": d.id, "data-status": d.status },
      h("th", { scope: "row" }, `#${d.id}`),
      h("td", {}, badge(d.status)),
      h("td", {}, d.reason),
      h("td", {}, `${d.topic} [${d.partition}] @${d.offset}`, h("span", { class: "age" }, `${bytes(d.payloadBytes)}, ${d.attempts} attempts`)),
      h("td", {}, when(d.createdAt)),
      canWrite() ? h("td", {}, waiting(d.status) ? [
        h("button", { type: "button", "data-action": "retry", onclick: (ev) => act(ev.currentTarget,
          () => api(`${API}/dead-letters/${d.id}/retry`, { method: "POST" }), (out) => `Dead letter #${d.id}: ${out.data.status}`) }, "Retry"),
        " ",
        h("button", { type: "button", class: "danger", "data-action": "discard", onclick: async (ev) => {
          const button = ev.currentTarget;
          if (await confirmAction(`Discard dead letter #${d.id}?`, `Its record is dropped for good: ${d.reason}`)) {
            act(button, () => api(`${API}/dead-letters/${d.id}/discard`, { method: "POST" }), () => `Dead letter #${d.id} discarded`);
          }
        } }, "Discard")] : "") : null));
    const headers = ["Letter", "Status", "Reason", "Record", "Kept since"];
    if (canWrite()) headers.push("Actions");
    view.append(h("h2", {}, "Dead letters"),
      h("div", { class: "panel", id: "dead-letters" }, table(headers, rows, "No dead letter.")));
  }

  async function replicaSummary(view) {
    const status = (await api(`${API}/status`)).data;
    const queue = await api(`${API}/queue?pageSize=10`);
    const resync = status.resync;
    let resyncCard;
    if (resync && resync.phase !== "done") {
      const pct = resync.total ? Math.min(100, Math.round((100 * resync.received) / resync.total)) : null;
      resyncCard = h("div", { class: "card", id: "resync-card" },
        h("div", { class: "label" }, `Resync (${resync.full ? "full" : "changes"})`),
        h("div", { class: "value" }, resync.phase),
        h("div", { class: "sub" }, `${number(resync.received)} of ${number(resync.total)} documents, ${bytes(resync.bytes)}` +
          (resync.etaMs ? `, about ${duration(resync.etaMs)} left` : "")),
        pct === null ? null : h("div", { class: "progress", role: "progressbar", "aria-label": "Resync progress",
          "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct }, filled(pct)),
        h("div", { class: "sub" }, resync.reason));
    } else {
      resyncCard = card("Resync", status.resyncRequired ? "needed" : resync ? "done" : "none",
        status.resyncRequired || (resync ? `last finished ${ago(resync.finishedAt)}` : "never needed"), "resync-card");
    }
    const buttons = canWrite() ? h("div", { class: "toolbar", id: "replica-actions" },
      h("button", { type: "button", id: "push-now", onclick: (ev) => act(ev.currentTarget, () => api(`${API}/push`, { method: "POST" }), (o) => `Sent ${o.data.pushed} changes`) }, "Push now"),
      h("button", { type: "button", id: "pull-now", onclick: (ev) => act(ev.currentTarget, () => api(`${API}/pull`, { method: "POST" }), (o) => `Applied ${o.data.pulled} records`) }, "Pull now"),
      h("button", { type: "button", id: "resync-now", onclick: async (ev) => {
        const button = ev.currentTarget;
        if (await confirmAction("Resync from the master?", "Pages of the master's state are fetched, then master-updates is read on from there. Local changes stay queued.")) {
          act(button, () => api(`${API}/resync`, { method: "POST" }), () => "Resync asked for");
        }
      } }, "Resync")) : null;
    const rows = queue.data.map((q) => h("tr", { "data-seq": q.seq },
      h("th", { scope: "row", class: "num" }, q.seq),
      h("td", {}, badge(q.status)),
      h("td", {}, q.operation),
      h("td", {}, q.contentType, h("span", { class: "age" }, q.documentId)),
      h("td", {}, q.outcome || "—"),
      h("td", {}, when(q.createdAt))));
    append(view, [h("h2", {}, `Ship ${status.shipId}`), buttons,
      h("div", { class: "cards" },
        linkCard(status.broker, "Link to the broker"),
        card("Pending", number(status.unsent), "not yet sent", "outbox-pending"),
        card("Sent", number(status.inFlight), "waiting for the master", "outbox-sent"),
        card("Acknowledged", number(status.acked), "answered by the master", "outbox-acked"),
        card("In conflict", number(status.inConflict), "answered with a conflict (open, or resolved since)", "outbox-conflict"),
        card("Refused", number(status.rejected), "the master refused them", "outbox-refused"),
        card("Applied from the master", number(status.appliedCsn), "CSN"),
        resyncCard),
      h("div", { class: "panel", id: "outbox" }, h("h3", {}, `Newest outbox rows (${queue.meta.pagination.total} kept)`),
        table([{ label: "Seq", num: true }, "State", "Operation", "Document", "Outcome", "Written"], rows, "The outbox is empty.")),
      ...(await summaryCards())]);
  }

  /** The filled part of a progress bar (a style property, which the policy allows). */
  function filled(pct) {
    const bar = h("div", {});
    bar.style.width = `${pct}%`;
    return bar;
  }

  async function audit(view) {
    view.append(h("h2", {}, "Audit log"), await auditPanel(null, "Admin actions, newest first"));
  }

  const VIEWS = {
    master: [
      ["summary", "Summary", masterSummary],
      ["fleet", "Fleet", fleet],
      ["conflicts", "Conflicts", conflicts],
      ["dead-letters", "Dead letters", deadLetters],
      ["audit", "Audit log", audit],
    ],
    replica: [
      ["summary", "Ship", replicaSummary],
      ["dead-letters", "Dead letters", deadLetters],
      ["audit", "Audit log", audit],
    ],
  };

  function route() {
    const hash = location.hash.replace(/^#/, "").split("?")[0];
    const views = VIEWS[session.mode];
    const conflict = hash.match(/^conflict\/(\d+)$/);
    if (conflict && session.mode === "master") return { key: "conflicts", draw: (v) => conflictView(v, conflict[1]), live: false };
    const found = views.find(([key]) => key === hash) || views[0];
    return { key: found[0], draw: found[2], live: true };
  }

  function drawTabs(current) {
    const nav = $("tabs");
    nav.replaceChildren(...VIEWS[session.mode].map(([key, label]) =>
      h("a", { href: `#${key}`, "aria-current": key === current ? "page" : null, "data-view": key }, label)));
    nav.hidden = false;
  }

  /** Draws the current view; a newer draw wins over one still waiting for the API. */
  async function draw(focus) {
    if (!session) return;
    const ticket = ++drawing;
    const r = route();
    drawTabs(r.key);
    const next = h("div", { id: "view", tabindex: "-1", "data-view": r.key });
    try {
      await r.draw(next);
      if (ticket !== drawing) return;
      clearError();
      const view = $("view");
      // A refresh waits while the operator is typing in a field of the view.
      const active = document.activeElement;
      const typing = !focus && view.contains(active) && ["INPUT", "SELECT"].includes(active.tagName);
      if (!typing) {
        view.replaceWith(next);
        if (focus) next.focus({ preventScroll: true });
        document.body.dataset.ready = r.key;
      }
    } catch (e) {
      if (ticket !== drawing) return;
      showError(e);
    }
    clearTimeout(timer);
    if (r.live && !$("confirm").open) timer = setTimeout(() => draw(false), REFRESH_MS);
  }

  // ---- signing in and out --------------------------------------------------------------

  /** Signs in with the stored token; `probe`: without one, to find a node that needs none
   * (no token configured: it serves loopback only), showing the form quietly otherwise. */
  async function start(probe) {
    try {
      session = (await api(`${API}/session`)).data;
    } catch (e) {
      const reason = e instanceof ApiFailure && e.status === 401
        ? "This token is not valid for this node."
        : `Cannot sign in: ${e.message}`;
      signOut(probe ? "" : reason);
      return;
    }
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    $("node-label").textContent = session.mode === "master" ? "master" : `ship ${session.shipId}`;
    $("role-label").textContent = session.canWrite ? "admin" : "read only";
    document.body.dataset.role = session.canWrite ? "admin" : "read";
    await draw(true);
  }

  function signOut(reason) {
    sessionStorage.removeItem(TOKEN_KEY);
    session = null;
    clearTimeout(timer);
    $("app").hidden = true;
    $("tabs").hidden = true;
    $("logout").hidden = true;
    $("role-label").textContent = "";
    $("view").replaceChildren();
    $("login").hidden = false;
    delete document.body.dataset.ready;
    const err = $("login-error");
    err.textContent = reason || "";
    err.hidden = !reason;
    $("token").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      $("token").value = "";
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      start(false);
    });
    $("logout").addEventListener("click", () => signOut(""));
    window.addEventListener("hashchange", () => draw(true));
    $("token").focus();
    start(!sessionStorage.getItem(TOKEN_KEY));
  });
})();
