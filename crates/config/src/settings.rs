//! [`Settings`]: everything the `master` and `replica` binaries are configured with, read
//! from an optional TOML file and the environment (which wins).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use offline_sync_engine::{MasterConfig, ReplicaConfig, SigningConfig, Topics};
use offline_sync_kafka::KafkaConfig;
use offline_sync_model::{
    ContentType, MASTER_SIGNER, Policies, Policy, PublicKey, RetrySchedule, Sensitive, ShipId, SigningKey,
};

use crate::database::{DatabaseSettings, database};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::values::{Values, loaded_names};

/// The longest retry delay, whatever `SYNC_RETRY_DELAY` and `SYNC_RETRY_ATTEMPTS` say.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// The accepted ship id characters, for error messages.
const SHIP_ID_RULE: &str = "use 1 to 64 of A-Z a-z 0-9 . _ - (not \"master\")";
/// The accepted conflict policies, for error messages.
const POLICIES: &str = "manual, master-wins, ship-wins, last-writer-wins";

/// Which binary is loading its settings (the engine's mode).
pub use offline_sync_engine::Mode;

/// The HTTP API's listener and access tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// Address to bind (`HOST`, default `0.0.0.0`; `127.0.0.1` when [`Self::loopback_only`]).
    pub host: String,
    /// Port to bind (`PORT`, default 1337).
    pub port: u16,
    /// Token granting full access (`SYNC_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// Token granting read-only access (`SYNC_READ_TOKEN`).
    pub read_token: Option<Secret>,
    /// No token is configured, so `host` was forced to `127.0.0.1`: an API without
    /// authentication is never reachable from another machine.
    pub loopback_only: bool,
    /// The Strapi routes of the synced content types (`SYNC_CONTENT_TYPES`): `/api/{plural}`
    /// serves the type as `/api/documents/{content_type}` does.
    pub plural_routes: BTreeMap<String, ContentType>,
}

/// The typed settings of one binary. `Debug` output never shows a password or token.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Which binary these settings are for.
    pub mode: Mode,
    /// This ship (`SYNC_SHIP_ID`): `Some` for a replica, where it is required; `None` for the
    /// master.
    pub ship_id: Option<ShipId>,
    /// Kafka connection, client id (`offline-sync-master` or `offline-sync-<ship id>`) and
    /// replication factor of created topics.
    pub kafka: KafkaConfig,
    /// The master engine's settings, always built (used when `mode` is [`Mode::Master`]).
    pub master: MasterConfig,
    /// The replica engine's settings: `Some` when `mode` is [`Mode::Replica`].
    pub replica: Option<ReplicaConfig>,
    /// The database.
    pub database: DatabaseSettings,
    /// Fields a filter finds through an index (`SYNC_INDEXES`), for every content type.
    pub indexed_fields: BTreeSet<String>,
    /// The HTTP API.
    pub http: HttpSettings,
    /// The master's HTTP API, where a replica fetches the master's state in a resync
    /// (`SYNC_MASTER_URL`, `SYNC_MASTER_TOKEN`).
    pub master_api: Option<MasterApi>,
    /// Where the node POSTs its webhook events (`SYNC_WEBHOOKS`).
    pub webhooks: Vec<WebhookSettings>,
    /// The key of each webhook body's signature (`SYNC_WEBHOOK_SECRET`): set whenever
    /// `webhooks` is not empty.
    pub webhook_secret: Option<Secret>,
}

/// A receiver of the node's webhook events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Where events are POSTed (http:// or https://); it may hold a token, so it is a secret.
    pub url: Secret,
    /// The events it receives (`entry.create`, `entry.update`, `entry.delete`): all when empty.
    pub events: BTreeSet<String>,
    /// Headers sent with every delivery, as given (a value may be a key).
    pub headers: Vec<(String, Secret)>,
}

/// The events a webhook may receive.
pub const WEBHOOK_EVENTS: [&str; 3] = ["entry.create", "entry.update", "entry.delete"];
/// Most webhooks a node delivers to.
const MAX_WEBHOOKS: usize = 16;
/// Fewest characters of `SYNC_WEBHOOK_SECRET`.
const MIN_WEBHOOK_SECRET: usize = 16;
/// Headers a webhook may not set: the node sets them (and every `X-Offline-Sync-` one).
const RESERVED_HEADERS: [&str; 4] = ["content-type", "content-length", "host", "transfer-encoding"];

/// The master's HTTP API as a replica reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterApi {
    /// Its base URL, without a trailing `/`.
    pub url: String,
    /// Its read token.
    pub token: Option<Secret>,
}

impl Settings {
    /// Loads from the optional TOML file (must exist if given) and the process environment;
    /// the environment wins over the file. Only the names of [`crate::SETTINGS`] are read
    /// from the environment.
    pub fn load(mode: Mode, file: Option<&Path>) -> Result<Settings> {
        let mut env = Vec::new();
        for name in loaded_names() {
            if let Some(value) = std::env::var_os(name) {
                let value = value
                    .into_string()
                    .map_err(|_| Error::invalid(name, "is not valid UTF-8"))?;
                env.push((name.to_owned(), value));
            }
        }
        Self::from_sources(mode, file, env)
    }

    /// Same as [`Settings::load`], from an explicit environment of (NAME, value) pairs
    /// (tests). Names the loader does not read are ignored; empty values count as unset.
    pub fn from_sources(
        mode: Mode,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings> {
        resolve(mode, &Values::load(file, env)?)
    }
}

/// Builds the settings from the merged values.
fn resolve(mode: Mode, v: &Values) -> Result<Settings> {
    if let Some(raw) = v.get("SYNC_MODE")
        && raw.trim().to_ascii_lowercase() != mode.as_str()
    {
        return Err(Error::invalid(
            "SYNC_MODE",
            format!("{raw:?} does not match this binary ({mode}); unset it or set it to {mode}"),
        ));
    }
    let ship_id = match mode {
        Mode::Master => None,
        Mode::Replica => Some(ship_id(v)?),
    };

    let mut kafka = KafkaConfig::from_settings(|name| v.get(name))?;
    kafka.client_id = match &ship_id {
        Some(ship) => format!("offline-sync-{ship}"),
        None => "offline-sync-master".to_owned(),
    };
    let factor = v.number("KAFKA_REPLICATION_FACTOR")?;
    kafka.replication_factor = i16::try_from(factor).unwrap_or(i16::MAX);

    let topics = Topics {
        ship_updates: topic(v, "KAFKA_TOPIC_SHIP_UPDATES", "ship-updates")?,
        master_updates: topic(v, "KAFKA_TOPIC_MASTER_UPDATES", "master-updates")?,
        snapshots: topic(v, "KAFKA_TOPIC_SNAPSHOTS", "master-snapshots")?,
    };
    if topics.ship_updates == topics.master_updates {
        return Err(Error::invalid(
            "KAFKA_TOPIC_MASTER_UPDATES",
            format!(
                "{:?} is also KAFKA_TOPIC_SHIP_UPDATES; the two topics must differ",
                topics.master_updates
            ),
        ));
    }
    if [&topics.ship_updates, &topics.master_updates].contains(&&topics.snapshots) {
        return Err(Error::invalid(
            "KAFKA_TOPIC_SNAPSHOTS",
            format!(
                "{:?} is also another topic; the three topics must differ",
                topics.snapshots
            ),
        ));
    }
    let partitions = v.number("KAFKA_SHIP_UPDATES_PARTITIONS")?;
    let ship_partitions = u32::try_from(partitions).unwrap_or(u32::MAX);
    let batch = v.number("SYNC_BATCH_SIZE")?;
    let batch_size = usize::try_from(batch).unwrap_or(usize::MAX);

    let delay = v.millis("SYNC_RETRY_DELAY")?;
    let attempts = v.number("SYNC_RETRY_ATTEMPTS")?;
    let retry = retry_schedule(delay, u32::try_from(attempts).unwrap_or(20));

    let check = v.number("SYNC_CONNECTIVITY_CHECK_INTERVAL")?;
    let heartbeat = v.number_from("SYNC_HEARTBEAT_INTERVAL", Some(check), None)?;
    let offline = v.number_from(
        "SYNC_OFFLINE_THRESHOLD",
        Some(3 * heartbeat),
        Some((heartbeat, "SYNC_HEARTBEAT_INTERVAL")),
    )?;
    let debounce = v.millis("SYNC_DEBOUNCE_MS")?;
    let content_types = content_types(v)?;
    let policies = policies(v)?;
    let poll_wait = v.millis("SYNC_POLL_WAIT")?;
    let ack_timeout = v.millis("SYNC_ACK_TIMEOUT")?;
    let hours = v.number("SYNC_LOG_RETENTION_HOURS")?;
    let retention = Duration::from_secs(hours * 3600);
    let days = v.number("SYNC_AUDIT_RETENTION_DAYS")?;
    let audit_retention = Duration::from_secs(days * 86_400);
    let sensitive = sensitive(v);
    let signing = signing(mode, v)?;

    let dead_letter_attempts = u32::try_from(attempts).unwrap_or(20);
    let master = MasterConfig {
        topics: topics.clone(),
        batch_size,
        retry,
        dead_letter_attempts,
        poll_wait,
        ship_partitions,
        offline_after: Duration::from_millis(offline),
        policies,
        content_types: content_types.clone(),
        retention,
        audit_retention,
        sensitive: sensitive.clone(),
        signing: signing.clone(),
    };
    let replica = ship_id.clone().map(|ship| {
        let mut r = ReplicaConfig::new(ship);
        r.topics = topics;
        r.batch_size = batch_size;
        r.debounce = debounce;
        r.retry = retry;
        r.dead_letter_attempts = dead_letter_attempts;
        r.heartbeat_interval = Duration::from_millis(heartbeat);
        r.ack_timeout = ack_timeout;
        r.poll_wait = poll_wait;
        r.ship_partitions = ship_partitions;
        r.content_types = content_types;
        r.retention = retention;
        r.audit_retention = audit_retention;
        r.sensitive = sensitive;
        r.signing = signing;
        r
    });
    let node = ship_id.as_ref().map_or("master", ShipId::as_str);
    let database = database(node, v)?;
    let indexed_fields = indexed_fields(v)?;
    let http = http(v)?;
    let master_api = match mode {
        Mode::Master => None,
        Mode::Replica => master_api(v)?,
    };
    let webhooks = webhooks(v)?;
    let webhook_secret = token(v, "SYNC_WEBHOOK_SECRET")?;
    match &webhook_secret {
        None if !webhooks.is_empty() => {
            return Err(Error::invalid(
                "SYNC_WEBHOOKS",
                "needs SYNC_WEBHOOK_SECRET, the key receivers check each body's signature with",
            ));
        }
        Some(secret) if secret.expose().chars().count() < MIN_WEBHOOK_SECRET => {
            return Err(Error::invalid(
                "SYNC_WEBHOOK_SECRET",
                format!("is too short; use at least {MIN_WEBHOOK_SECRET} characters"),
            ));
        }
        _ => {}
    }
    Ok(Settings {
        mode,
        ship_id,
        kafka,
        master,
        replica,
        database,
        indexed_fields,
        http,
        master_api,
        webhooks,
        webhook_secret,
    })
}

/// Most characters of an indexed field (an index's name holds it).
const MAX_INDEXED_FIELD: usize = 40;

/// `SYNC_INDEXES`: comma-separated field names, blanks ignored.
fn indexed_fields(v: &Values) -> Result<BTreeSet<String>> {
    const SETTING: &str = "SYNC_INDEXES";
    let Some(raw) = v.get(SETTING) else {
        return Ok(BTreeSet::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|field| {
            let valid = field.len() <= MAX_INDEXED_FIELD
                && field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if valid {
                Ok(field.to_owned())
            } else {
                Err(Error::invalid(
                    SETTING,
                    format!("{field:?} cannot be indexed; use 1 to {MAX_INDEXED_FIELD} of A-Z a-z 0-9 _"),
                ))
            }
        })
        .collect()
}

/// `SYNC_WEBHOOKS`: comma-separated URLs, or a JSON list of
/// `{"url": ..., "events": [...], "headers": {...}}`.
fn webhooks(v: &Values) -> Result<Vec<WebhookSettings>> {
    const SETTING: &str = "SYNC_WEBHOOKS";
    let Some(raw) = v.get(SETTING) else {
        return Ok(Vec::new());
    };
    let invalid = |why: String| Error::invalid(SETTING, why);
    let hooks: Vec<WebhookSettings> = if raw.trim_start().starts_with('[') {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Hook {
            url: String,
            #[serde(default)]
            events: Vec<String>,
            #[serde(default)]
            headers: BTreeMap<String, String>,
        }
        let hooks: Vec<Hook> = serde_json::from_str(&raw).map_err(|e| {
            invalid(format!(
                "is not a JSON list of {{\"url\", \"events\", \"headers\"}} ({e})"
            ))
        })?;
        hooks
            .into_iter()
            .map(|h| WebhookSettings {
                url: Secret::new(h.url),
                events: h.events.into_iter().collect(),
                headers: h.headers.into_iter().map(|(k, v)| (k, Secret::new(v))).collect(),
            })
            .collect()
    } else {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|url| WebhookSettings {
                url: Secret::new(url),
                events: BTreeSet::new(),
                headers: Vec::new(),
            })
            .collect()
    };
    if hooks.len() > MAX_WEBHOOKS {
        return Err(invalid(format!(
            "names {} webhooks; at most {MAX_WEBHOOKS}",
            hooks.len()
        )));
    }
    let mut urls = BTreeSet::new();
    for (n, hook) in hooks.iter().enumerate() {
        let n = n + 1;
        let url = hook.url.expose();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| invalid(format!("webhook {n} is not an http:// or https:// URL")))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
        if !host_ok || !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "webhook {n} is not a URL with a host (and no spaces or other than ASCII)"
            )));
        }
        if !urls.insert(url) {
            return Err(invalid(format!("webhook {n} repeats an earlier URL")));
        }
        if let Some(event) = hook.events.iter().find(|e| !WEBHOOK_EVENTS.contains(&e.as_str())) {
            return Err(invalid(format!(
                "webhook {n} asks for event {event:?}; use {}",
                WEBHOOK_EVENTS.join(", ")
            )));
        }
        for (name, value) in &hook.headers {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(invalid(format!(
                    "webhook {n} has header {name:?}, not a header name"
                )));
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-offline-sync-") {
                return Err(invalid(format!(
                    "webhook {n} sets header {name}, which the node sets"
                )));
            }
            if !value
                .expose()
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                return Err(invalid(format!(
                    "webhook {n} has a line break or other than ASCII in header {name}"
                )));
            }
        }
    }
    Ok(hooks)
}

/// `SYNC_MASTER_URL` and `SYNC_MASTER_TOKEN`.
fn master_api(v: &Values) -> Result<Option<MasterApi>> {
    let token = token(v, "SYNC_MASTER_TOKEN")?;
    let Some(raw) = v.get("SYNC_MASTER_URL") else {
        if token.is_some() {
            return Err(Error::invalid(
                "SYNC_MASTER_TOKEN",
                "is set without SYNC_MASTER_URL; set the master's URL too, or unset the token",
            ));
        }
        return Ok(None);
    };
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.chars().any(|c| c.is_whitespace() || c == '?' || c == '#')) {
        return Err(Error::invalid(
            "SYNC_MASTER_URL",
            format!(
                "{raw:?} is not an http:// or https:// URL of the master's API (such as http://master.example:1337)"
            ),
        ));
    }
    if rest.is_some_and(|r| r.split('/').next().unwrap_or_default().contains('@')) {
        // Said without the value: it holds a credential, and errors are logged.
        return Err(Error::invalid(
            "SYNC_MASTER_URL",
            "holds a user or password; put the master's read token in SYNC_MASTER_TOKEN (or SYNC_MASTER_TOKEN_FILE) instead",
        ));
    }
    Ok(Some(MasterApi {
        url: url.to_owned(),
        token,
    }))
}

/// `SYNC_SHIP_ID`, required.
fn ship_id(v: &Values) -> Result<ShipId> {
    let raw = v.get("SYNC_SHIP_ID").ok_or_else(|| {
        Error::invalid(
            "SYNC_SHIP_ID",
            format!("required by the replica: this ship's id; {SHIP_ID_RULE}"),
        )
    })?;
    ShipId::new(raw.trim()).map_err(|_| {
        Error::invalid(
            "SYNC_SHIP_ID",
            format!("{raw:?} is not a ship id; {SHIP_ID_RULE}"),
        )
    })
}

/// The retry backoff: `delay` doubles for `attempts` retries, capped at one hour, then stays.
pub(crate) fn retry_schedule(delay: Duration, attempts: u32) -> RetrySchedule {
    let factor = 1u32.checked_shl(attempts).unwrap_or(u32::MAX);
    RetrySchedule {
        initial: delay,
        max: delay.saturating_mul(factor).min(MAX_RETRY_DELAY).max(delay),
    }
}

/// A Kafka topic name: 1 to 249 of `A-Z a-z 0-9 . _ -`, not `.` or `..`.
fn topic(v: &Values, name: &str, default: &str) -> Result<String> {
    let Some(raw) = v.get(name) else {
        return Ok(default.to_owned());
    };
    let t = raw.trim();
    let ok = (1..=249).contains(&t.len())
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(Error::invalid(
            name,
            format!(
                "{raw:?} is not a Kafka topic name; use 1 to 249 of A-Z a-z 0-9 . _ - (not \".\" or \"..\")"
            ),
        ))
    }
}

/// One content type of `setting`.
fn content_type(setting: &str, raw: &str) -> Result<ContentType> {
    ContentType::new(raw).map_err(|_| {
        Error::invalid(
            setting,
            format!("{raw:?} is not a content type; use 1 to 128 of A-Z a-z 0-9 . _ - :"),
        )
    })
}

/// The entries of `SYNC_CONTENT_TYPES`: comma-separated `uid` or `uid=plural`, blanks
/// ignored; each type with the plural its entry names, if any.
fn content_type_entries(v: &Values) -> Result<Vec<(ContentType, Option<String>)>> {
    const SETTING: &str = "SYNC_CONTENT_TYPES";
    let Some(raw) = v.get(SETTING) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (uid, plural) = match entry.split_once('=') {
                Some((uid, plural)) => (uid.trim(), Some(plural_name(SETTING, plural.trim())?)),
                None => (entry, None),
            };
            Ok((content_type(SETTING, uid)?, plural))
        })
        .collect()
}

/// Path segments under `/api/` the node's own routes take: never a content type's plural.
const RESERVED_PLURALS: &[&str] = &["documents", "offline-sync"];

/// A Strapi plural route name: 1 to 64 of `a-z 0-9 - _`, beginning with a letter.
fn plural_name(setting: &str, raw: &str) -> Result<String> {
    let valid = raw.len() <= 64
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(Error::invalid(
            setting,
            format!(
                "{raw:?} is not a plural route name; use 1 to 64 of a-z 0-9 - _, beginning with a letter"
            ),
        ));
    }
    Ok(raw.to_owned())
}

/// `SYNC_CONTENT_TYPES` as the engine takes it: `None` (all types) when empty.
fn content_types(v: &Values) -> Result<Option<BTreeSet<ContentType>>> {
    let set: BTreeSet<ContentType> = content_type_entries(v)?.into_iter().map(|(ct, _)| ct).collect();
    Ok(Some(set).filter(|s| !s.is_empty()))
}

/// The Strapi routes of `SYNC_CONTENT_TYPES`: each plural to its type. A plural an entry
/// names must be free (none of [`RESERVED_PLURALS`], no other type's) and a type takes one;
/// a derived one that is not a route name, is reserved or is another type's gives that type
/// no route (its `/api/documents/{uid}` stays), so a list that started before still starts.
fn plural_routes(v: &Values) -> Result<BTreeMap<String, ContentType>> {
    const SETTING: &str = "SYNC_CONTENT_TYPES";
    let entries = content_type_entries(v)?;
    let mut routes: BTreeMap<String, ContentType> = BTreeMap::new();
    for (ct, plural) in entries.iter().filter_map(|(ct, p)| Some((ct, p.as_ref()?))) {
        if RESERVED_PLURALS.contains(&plural.as_str()) {
            return Err(Error::invalid(
                SETTING,
                format!("{ct}: /api/{plural} is the node's own route; name another plural ({ct}=...)"),
            ));
        }
        if let Some(other) = routes.get(plural).filter(|other| *other != ct) {
            return Err(Error::invalid(
                SETTING,
                format!("{other} and {ct} both take /api/{plural}; name another plural for one of them"),
            ));
        }
        if let Some((taken, _)) = routes.iter().find(|(p, other)| *other == ct && *p != plural) {
            return Err(Error::invalid(
                SETTING,
                format!("{ct} is given two plurals, {taken} and {plural}; give it one"),
            ));
        }
        routes.insert(plural.clone(), ct.clone());
    }
    for ct in entries.iter().filter(|(_, p)| p.is_none()).map(|(ct, _)| ct) {
        if routes.values().any(|named| named == ct) {
            continue;
        }
        let plural = ct.default_plural();
        let free = plural_name(SETTING, &plural).is_ok()
            && !RESERVED_PLURALS.contains(&plural.as_str())
            && !routes.contains_key(&plural);
        if free {
            routes.insert(plural, ct.clone());
        }
    }
    Ok(routes)
}

/// One conflict policy of `setting`.
fn policy(setting: &str, raw: &str) -> Result<Policy> {
    Policy::parse(&raw.trim().to_ascii_lowercase())
        .map_err(|_| Error::invalid(setting, format!("{raw:?} is not one of {POLICIES}")))
}

/// `SYNC_CONFLICT_POLICY` and `SYNC_CONFLICT_POLICIES` (`type=policy,type=policy`).
fn policies(v: &Values) -> Result<Policies> {
    let mut policies = Policies::default();
    if let Some(raw) = v.get("SYNC_CONFLICT_POLICY") {
        policies.default = policy("SYNC_CONFLICT_POLICY", &raw)?;
    }
    let Some(raw) = v.get("SYNC_CONFLICT_POLICIES") else {
        return Ok(policies);
    };
    const NAME: &str = "SYNC_CONFLICT_POLICIES";
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (ct, p) = entry.split_once('=').ok_or_else(|| {
            Error::invalid(
                NAME,
                format!("{entry:?} is not content-type=policy (policy one of {POLICIES})"),
            )
        })?;
        let ct = content_type(NAME, ct.trim())?;
        let p = policy(NAME, p)?;
        if policies.per_type.insert(ct.clone(), p).is_some() {
            return Err(Error::invalid(NAME, format!("{ct} is listed twice")));
        }
    }
    Ok(policies)
}

/// `SYNC_SENSITIVE_FIELDS`: comma-separated names, blanks ignored; the defaults when unset.
fn sensitive(v: &Values) -> Sensitive {
    match v.get("SYNC_SENSITIVE_FIELDS") {
        Some(raw) => Sensitive::new(raw.split(',')),
        None => Sensitive::default(),
    }
}

/// A value given either inline (`name`) or as a file (`name_FILE`, for secrets mounted by
/// systemd or Kubernetes; one trailing line break is dropped). Never both. Messages never
/// repeat the value.
fn inline_or_file(v: &Values, name: &str, file_name: &str) -> Result<Option<(String, &'static str)>> {
    let inline = v.get(name);
    let Some(path) = v.get(file_name) else {
        return Ok(inline.map(|value| (value, "")));
    };
    if inline.is_some() {
        return Err(Error::invalid(
            file_name,
            format!("is set together with {name}; set only one of them"),
        ));
    }
    let text = std::fs::read_to_string(path.trim())
        .map_err(|e| Error::invalid(file_name, format!("cannot read {:?}: {e}", path.trim())))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(Error::invalid(file_name, format!("{:?} is empty", path.trim())));
    }
    Ok(Some((text.to_owned(), "_FILE")))
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`).
fn flag(v: &Values, name: &str) -> Result<bool> {
    match v.get(name).map(|r| r.trim().to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(Error::invalid(name, "is not true or false")),
    }
}

/// One base64 Ed25519 public key of `setting`.
fn public_key(setting: &str, what: &str, raw: &str) -> Result<PublicKey> {
    PublicKey::parse(raw).and_then(PublicKey::check).map_err(|e| {
        Error::invalid(
            setting,
            format!("{what} is not a base64 Ed25519 public key ({e})"),
        )
    })
}

/// The signing key, the keys pinned ahead and strict mode.
fn signing(mode: Mode, v: &Values) -> Result<SigningConfig> {
    let mut cfg = SigningConfig::default();
    if let Some((raw, suffix)) = inline_or_file(v, "SYNC_SIGNING_KEY", "SYNC_SIGNING_KEY_FILE")? {
        let name = if suffix.is_empty() {
            "SYNC_SIGNING_KEY"
        } else {
            "SYNC_SIGNING_KEY_FILE"
        };
        let key = SigningKey::parse(&raw).map_err(|e| {
            Error::invalid(
                name,
                format!(
                    "is not a base64 Ed25519 signing key ({e}); `{} keygen` prints one",
                    mode.as_str()
                ),
            )
        })?;
        cfg.key = Some(key);
    }
    match mode {
        Mode::Master => {
            const NAME: &str = "SYNC_SHIP_KEYS";
            if let Some(raw) = v.get(NAME) {
                for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                    let (ship, key) = entry.split_once('=').ok_or_else(|| {
                        Error::invalid(NAME, format!("{entry:?} is not ship-id=public-key"))
                    })?;
                    let ship = ShipId::new(ship.trim()).map_err(|_| {
                        Error::invalid(
                            NAME,
                            format!("{:?} is not a ship id; {SHIP_ID_RULE}", ship.trim()),
                        )
                    })?;
                    let key = public_key(NAME, &format!("the key of {ship}"), key)?;
                    if cfg.pinned.insert(ship.to_string(), key).is_some() {
                        return Err(Error::invalid(NAME, format!("{ship} is listed twice")));
                    }
                }
            }
            cfg.require_known = flag(v, "SYNC_REQUIRE_KNOWN_SHIPS")?;
        }
        Mode::Replica => {
            if let Some(raw) = v.get("SYNC_MASTER_PUBLIC_KEY") {
                let key = public_key("SYNC_MASTER_PUBLIC_KEY", "the value", &raw)?;
                cfg.pinned.insert(MASTER_SIGNER.to_owned(), key);
            }
        }
    }
    Ok(cfg)
}

/// An access token, inline or from its file: no whitespace. The message never repeats the
/// value.
fn token(v: &Values, name: &str) -> Result<Option<Secret>> {
    let file_name = format!("{name}_FILE");
    let file_name = crate::values::loaded_names()
        .find(|n| *n == file_name)
        .unwrap_or(name);
    let Some((raw, suffix)) = inline_or_file(v, name, file_name)? else {
        return Ok(None);
    };
    let name = if suffix.is_empty() { name } else { file_name };
    if raw.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            name,
            "contains whitespace; use a token without spaces, tabs or line breaks",
        ));
    }
    Ok(Some(Secret::new(raw)))
}

/// `HOST`, `PORT` and the tokens; forces `127.0.0.1` when no token is set.
fn http(v: &Values) -> Result<HttpSettings> {
    let host = v.host("HOST", "0.0.0.0")?;
    let port = v.number("PORT")?;
    let admin_token = token(v, "SYNC_ADMIN_TOKEN")?;
    let read_token = token(v, "SYNC_READ_TOKEN")?;
    if admin_token.is_some() && admin_token == read_token {
        return Err(Error::invalid(
            "SYNC_READ_TOKEN",
            "is the same as SYNC_ADMIN_TOKEN; the two tokens must differ",
        ));
    }
    let loopback_only = admin_token.is_none() && read_token.is_none();
    Ok(HttpSettings {
        host: if loopback_only {
            "127.0.0.1".to_owned()
        } else {
            host
        },
        port: u16::try_from(port).unwrap_or(u16::MAX),
        admin_token,
        read_token,
        loopback_only,
        plural_routes: plural_routes(v)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load(mode: Mode, pairs: &[(&str, &str)]) -> Result<Settings> {
        Settings::from_sources(mode, None, env(pairs))
    }

    fn err(mode: Mode, pairs: &[(&str, &str)]) -> String {
        load(mode, pairs).unwrap_err().to_string()
    }

    fn toml(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    const SHIP: (&str, &str) = ("SYNC_SHIP_ID", "ship-1");

    /// The Strapi routes of `s`, plural to uid.
    fn plural_routes(s: &Settings) -> Vec<(&str, &str)> {
        s.http
            .plural_routes
            .iter()
            .map(|(plural, ct)| (plural.as_str(), ct.as_str()))
            .collect()
    }

    #[test]
    fn content_types_name_their_strapi_routes() {
        for (raw, expected) in [
            (
                "api::article.article=articles,api::crew.crew=crews",
                vec![("articles", "api::article.article"), ("crews", "api::crew.crew")],
            ),
            (
                "api::crew.crew = crew-members, api::category.category",
                vec![
                    ("categories", "api::category.category"),
                    ("crew-members", "api::crew.crew"),
                ],
            ),
            ("", vec![]),
            // A derived plural that is reserved, or another type's, gives no route.
            ("api::document.document", vec![]),
            (
                "api::article.article,api::post.post=articles",
                vec![("articles", "api::post.post")],
            ),
            (
                "api::article.article,api::article.article=posts",
                vec![("posts", "api::article.article")],
            ),
        ] {
            let s = load(Mode::Replica, &[SHIP, ("SYNC_CONTENT_TYPES", raw)]).unwrap();
            let routes = plural_routes(&s);
            assert_eq!(routes, expected, "{raw}");
        }
    }

    #[test]
    fn every_number_is_refused_just_outside_the_range_the_table_gives() {
        let numbers: Vec<_> = crate::SETTINGS
            .iter()
            .filter_map(|s| Some((s.name, s.range()?)))
            .collect();
        assert!(numbers.len() >= 15, "{numbers:?}");
        for (name, range) in numbers {
            let mut pairs = vec![SHIP];
            if name == "DATABASE_PORT" {
                pairs.push(("DATABASE_CLIENT", "postgres"));
            }
            let above = (range.max + 1).to_string();
            pairs.push((name, &above));
            let message = err(Mode::Replica, &pairs);
            assert!(
                message.starts_with(&format!("{name}: \"{above}\" is not a whole number from")),
                "{message}"
            );
            let max = range.max.to_string();
            *pairs.last_mut().unwrap() = (name, &max);
            assert!(load(Mode::Replica, &pairs).is_ok(), "{name}={max}");
        }
    }

    #[test]
    fn master_defaults() {
        let s = load(Mode::Master, &[]).unwrap();
        assert_eq!((s.mode, s.ship_id.as_ref()), (Mode::Master, None));
        assert!(s.replica.is_none());
        assert_eq!(s.kafka.brokers, vec!["localhost:9092".to_owned()]);
        assert_eq!(s.kafka.client_id, "offline-sync-master");
        assert_eq!(s.kafka.replication_factor, 1);
        assert!(s.kafka.tls.is_none() && s.kafka.sasl.is_none());
        let m = &s.master;
        assert_eq!(m.topics, Topics::default());
        assert_eq!((m.batch_size, m.ship_partitions), (100, 1));
        assert_eq!(
            m.retry,
            RetrySchedule {
                initial: Duration::from_secs(5),
                max: Duration::from_secs(40),
            }
        );
        assert_eq!(m.poll_wait, Duration::from_secs(1));
        assert_eq!(m.offline_after, Duration::from_secs(90));
        assert_eq!(m.policies, Policies::default());
        assert_eq!(m.content_types, None);
        assert_eq!(m.retention, Duration::from_secs(168 * 3600));
        assert_eq!(m.audit_retention, Duration::from_secs(365 * 86_400));
        assert_eq!(s.database.client, crate::DatabaseClient::Sqlite);
        assert_eq!(
            s.database.url.expose(),
            "sqlite://offline-sync-master.db?mode=rwc"
        );
        assert_eq!(s.http.port, 1337);
        assert_eq!(s.http.host, "127.0.0.1");
        assert!(s.http.loopback_only && s.http.admin_token.is_none() && s.http.read_token.is_none());
    }

    #[test]
    fn replica_defaults() {
        let s = load(Mode::Replica, &[SHIP]).unwrap();
        assert_eq!(s.ship_id.as_ref().map(ShipId::as_str), Some("ship-1"));
        assert_eq!(s.kafka.client_id, "offline-sync-ship-1");
        assert_eq!(
            s.database.url.expose(),
            "sqlite://offline-sync-ship-1.db?mode=rwc"
        );
        let r = s.replica.unwrap();
        let d = ReplicaConfig::new(ShipId::new("ship-1").unwrap());
        assert_eq!(r.ship, d.ship);
        assert_eq!(r.topics, d.topics);
        assert_eq!(r.batch_size, d.batch_size);
        assert_eq!(r.debounce, d.debounce);
        assert_eq!(r.heartbeat_interval, d.heartbeat_interval);
        assert_eq!(r.ack_timeout, d.ack_timeout);
        assert_eq!(r.poll_wait, d.poll_wait);
        assert_eq!(r.ship_partitions, d.ship_partitions);
        assert_eq!(r.content_types, d.content_types);
        assert_eq!(r.retention, d.retention);
        assert_eq!(r.retry.initial, Duration::from_secs(5));
    }

    /// Every seed variable, with a non-default value.
    const ALL: &[(&str, &str)] = &[
        ("SYNC_MODE", "Replica"),
        ("SYNC_SHIP_ID", "atlantic-7"),
        ("KAFKA_BROKERS", "k1:9093,k2:9093"),
        ("KAFKA_SSL_ENABLED", "true"),
        ("KAFKA_SSL_CA_FILE", "/etc/ca.pem"),
        ("KAFKA_SASL_MECHANISM", "scram-sha-256"),
        ("KAFKA_SASL_USERNAME", "ship"),
        ("KAFKA_SASL_PASSWORD", "sasl-secret-1"),
        ("KAFKA_COMPRESSION", "lz4"),
        ("KAFKA_REPLICATION_FACTOR", "3"),
        ("KAFKA_TOPIC_SHIP_UPDATES", "up.ship"),
        ("KAFKA_TOPIC_MASTER_UPDATES", "down_master"),
        ("KAFKA_TOPIC_SNAPSHOTS", "down_pages"),
        ("KAFKA_SHIP_UPDATES_PARTITIONS", "12"),
        ("SYNC_BATCH_SIZE", "250"),
        ("SYNC_RETRY_DELAY", "2000"),
        ("SYNC_RETRY_ATTEMPTS", "5"),
        ("SYNC_CONNECTIVITY_CHECK_INTERVAL", "10000"),
        ("SYNC_HEARTBEAT_INTERVAL", "15000"),
        ("SYNC_OFFLINE_THRESHOLD", "60000"),
        ("SYNC_DEBOUNCE_MS", "0"),
        ("SYNC_CONTENT_TYPES", "api::article.article, ,api::note.note"),
        ("SYNC_CONFLICT_POLICY", "master-wins"),
        (
            "SYNC_CONFLICT_POLICIES",
            "api::article.article=ship-wins,api::note.note=last-writer-wins",
        ),
        ("SYNC_POLL_WAIT", "250"),
        ("SYNC_ACK_TIMEOUT", "60000"),
        ("SYNC_LOG_RETENTION_HOURS", "24"),
        ("SYNC_AUDIT_RETENTION_DAYS", "30"),
        ("DATABASE_CLIENT", "postgres"),
        ("DATABASE_HOST", "db"),
        ("DATABASE_PORT", "5433"),
        ("DATABASE_NAME", "fleet"),
        ("DATABASE_USERNAME", "sync"),
        ("DATABASE_PASSWORD", "db-secret-2"),
        ("DATABASE_FILENAME", "unused.db"),
        ("HOST", "10.0.0.5"),
        ("PORT", "8080"),
        ("SYNC_ADMIN_TOKEN", "admin-secret-3"),
        ("SYNC_READ_TOKEN", "read-secret-4"),
    ];

    #[test]
    fn every_seed_variable_is_parsed() {
        let s = load(Mode::Replica, ALL).unwrap();
        let k = &s.kafka;
        assert_eq!(k.brokers, vec!["k1:9093".to_owned(), "k2:9093".to_owned()]);
        assert_eq!(
            k.tls.as_ref().and_then(|t| t.ca_file.as_deref()),
            Some(Path::new("/etc/ca.pem"))
        );
        let sasl = k.sasl.as_ref().unwrap();
        assert_eq!(
            (sasl.mechanism, sasl.username.as_str(), sasl.password.as_str()),
            (
                offline_sync_kafka::SaslMechanism::ScramSha256,
                "ship",
                "sasl-secret-1"
            )
        );
        assert_eq!(k.compression, offline_sync_kafka::Compression::Lz4);
        assert_eq!(
            (k.replication_factor, k.client_id.as_str()),
            (3, "offline-sync-atlantic-7")
        );
        let topics = Topics {
            ship_updates: "up.ship".into(),
            master_updates: "down_master".into(),
            snapshots: "down_pages".into(),
        };
        let types: BTreeSet<ContentType> = ["api::article.article", "api::note.note"]
            .into_iter()
            .map(|t| ContentType::new(t).unwrap())
            .collect();
        let retry = RetrySchedule {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(64),
        };
        let m = &s.master;
        assert_eq!(m.topics, topics);
        assert_eq!((m.batch_size, m.ship_partitions, m.retry), (250, 12, retry));
        assert_eq!(m.offline_after, Duration::from_secs(60));
        assert_eq!(m.poll_wait, Duration::from_millis(250));
        assert_eq!(m.retention, Duration::from_secs(24 * 3600));
        assert_eq!(m.audit_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(m.content_types.as_ref(), Some(&types));
        let routes = plural_routes(&s);
        assert_eq!(
            routes,
            [("articles", "api::article.article"), ("notes", "api::note.note")]
        );
        assert_eq!(m.policies.default, Policy::MasterWins);
        let article = ContentType::new("api::article.article").unwrap();
        let note = ContentType::new("api::note.note").unwrap();
        assert_eq!(m.policies.for_type(&article), Policy::ShipWins);
        assert_eq!(m.policies.for_type(&note), Policy::LastWriterWins);
        let r = s.replica.as_ref().unwrap();
        assert_eq!(r.ship.as_str(), "atlantic-7");
        assert_eq!(r.topics, topics);
        assert_eq!((r.batch_size, r.ship_partitions, r.retry), (250, 12, retry));
        assert_eq!(r.debounce, Duration::ZERO);
        assert_eq!(r.heartbeat_interval, Duration::from_secs(15));
        assert_eq!(r.ack_timeout, Duration::from_secs(60));
        assert_eq!(r.poll_wait, Duration::from_millis(250));
        assert_eq!(r.content_types.as_ref(), Some(&types));
        assert_eq!(r.retention, Duration::from_secs(24 * 3600));
        assert_eq!(r.audit_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(
            s.database.url.expose(),
            "postgres://sync:db-secret-2@db:5433/fleet"
        );
        assert_eq!(s.database.display, "postgres://sync:***@db:5433/fleet");
        let h = &s.http;
        assert_eq!(
            (h.host.as_str(), h.port, h.loopback_only),
            ("10.0.0.5", 8080, false)
        );
        assert_eq!(h.admin_token.as_ref().map(Secret::expose), Some("admin-secret-3"));
        assert_eq!(h.read_token.as_ref().map(Secret::expose), Some("read-secret-4"));
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let s = load(Mode::Replica, ALL).unwrap();
        let debug = format!("{s:?} {s:#?}");
        for secret in ["sasl-secret-1", "db-secret-2", "admin-secret-3", "read-secret-4"] {
            assert!(!debug.contains(secret), "{secret} leaked");
        }
        assert!(debug.contains("postgres://sync:***@db:5433/fleet") && debug.contains("<redacted>"));
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file = toml(
            "sync_ship_id = \"from-file\"\nSYNC_BATCH_SIZE = 7\nkafka_ssl_enabled = true\n\
             Sync_Poll_Wait = \"20\"\nsync_debounce_ms = 5\n",
        );
        let s = Settings::from_sources(
            Mode::Replica,
            Some(file.path()),
            env(&[("SYNC_BATCH_SIZE", "9"), ("SYNC_DEBOUNCE_MS", "")]),
        )
        .unwrap();
        let r = s.replica.unwrap();
        assert_eq!(r.ship.as_str(), "from-file");
        assert_eq!(r.batch_size, 9);
        assert_eq!(r.poll_wait, Duration::from_millis(20));
        // An empty environment value is unset: the file's value stands.
        assert_eq!(r.debounce, Duration::from_millis(5));
        assert!(s.kafka.tls.is_some());
    }

    #[test]
    fn file_mistakes_are_refused_naming_the_key_or_file() {
        let load_file = |text: &str| {
            let file = toml(text);
            Settings::from_sources(Mode::Master, Some(file.path()), Vec::new())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            load_file("sync_batch_sise = 5\n"),
            "sync_batch_sise: unknown setting (did you mean SYNC_BATCH_SIZE?)"
        );
        assert!(load_file("[sync]\nmode = \"x\"\n").starts_with("sync: unknown setting"));
        assert_eq!(
            load_file("rust_log = \"debug\"\n"),
            "rust_log: is read from the environment only, not from the settings file"
        );
        assert_eq!(
            load_file("sync_poll_wait = 1.5\n"),
            "SYNC_POLL_WAIT: expected a string, a whole number or a boolean in the settings file"
        );
        assert!(load_file("port = 1\nPORT = 2\n").contains(": set twice in the settings file"));
        let bad = load_file("port = \n");
        assert!(bad.starts_with("settings file ") && !bad.contains('\n'), "{bad}");
        assert!(
            bad.contains(": TOML parse error at line 1, column 8: string values must be quoted"),
            "{bad}"
        );
        let missing =
            Settings::from_sources(Mode::Master, Some(Path::new("/nonexistent/x.toml")), Vec::new())
                .unwrap_err();
        assert!(matches!(missing, Error::File { .. }));
        assert!(
            missing
                .to_string()
                .starts_with("settings file /nonexistent/x.toml: ")
        );
    }

    #[test]
    fn tokens_and_the_signing_key_come_from_files_too() {
        let admin = toml("admin-from-file\n");
        let read = toml("read-from-file");
        let key = SigningKey::from_seed([5; 32]);
        let key_file = toml(&format!("{}\n", key.to_base64()));
        let path = |f: &tempfile::NamedTempFile| f.path().display().to_string();
        let s = load(
            Mode::Master,
            &[
                ("SYNC_ADMIN_TOKEN_FILE", &path(&admin)),
                ("SYNC_READ_TOKEN_FILE", &path(&read)),
                ("SYNC_SIGNING_KEY_FILE", &path(&key_file)),
            ],
        )
        .unwrap();
        assert_eq!(
            s.http.admin_token.as_ref().map(Secret::expose),
            Some("admin-from-file")
        );
        assert_eq!(
            s.http.read_token.as_ref().map(Secret::expose),
            Some("read-from-file")
        );
        assert!(!s.http.loopback_only);
        assert_eq!(
            s.master.signing.key.as_ref().map(SigningKey::public),
            Some(key.public())
        );
        let both = err(
            Mode::Master,
            &[
                ("SYNC_ADMIN_TOKEN", "x"),
                ("SYNC_ADMIN_TOKEN_FILE", &path(&admin)),
            ],
        );
        assert_eq!(
            both,
            "SYNC_ADMIN_TOKEN_FILE: is set together with SYNC_ADMIN_TOKEN; set only one of them"
        );
        let missing = err(Mode::Master, &[("SYNC_READ_TOKEN_FILE", "/nonexistent/token")]);
        assert!(
            missing.starts_with("SYNC_READ_TOKEN_FILE: cannot read \"/nonexistent/token\""),
            "{missing}"
        );
        let bad_key = err(Mode::Replica, &[SHIP, ("SYNC_SIGNING_KEY", "c2VjcmV0")]);
        assert!(
            bad_key.starts_with("SYNC_SIGNING_KEY: is not a base64 Ed25519 signing key"),
            "{bad_key}"
        );
        assert!(
            !bad_key.contains("c2VjcmV0"),
            "the message never repeats a secret"
        );
    }

    #[test]
    fn keys_pinned_ahead_strict_mode_and_sensitive_fields() {
        let ship_key = SigningKey::from_seed([6; 32]).public();
        let s = load(
            Mode::Master,
            &[
                ("SYNC_SHIP_KEYS", &format!("ship-a={ship_key}, ship-b={ship_key}")),
                ("SYNC_REQUIRE_KNOWN_SHIPS", "true"),
                ("SYNC_SENSITIVE_FIELDS", "pin, Passcode"),
            ],
        )
        .unwrap();
        assert_eq!(s.master.signing.pinned.len(), 2);
        assert_eq!(s.master.signing.pinned["ship-a"], ship_key);
        assert!(s.master.signing.require_known);
        assert!(s.master.sensitive.is_sensitive("PASSCODE") && !s.master.sensitive.is_sensitive("password"));
        let d = load(
            Mode::Replica,
            &[SHIP, ("SYNC_MASTER_PUBLIC_KEY", &ship_key.to_base64())],
        )
        .unwrap();
        let r = d.replica.unwrap();
        assert_eq!(r.signing.pinned[MASTER_SIGNER], ship_key);
        assert!(r.sensitive.is_sensitive("resetPasswordToken"), "the defaults");
        assert_eq!(
            err(Mode::Master, &[("SYNC_SHIP_KEYS", "ship-a")]),
            "SYNC_SHIP_KEYS: \"ship-a\" is not ship-id=public-key"
        );
        assert!(
            err(Mode::Master, &[("SYNC_SHIP_KEYS", "ship-a=AAAA")])
                .starts_with("SYNC_SHIP_KEYS: the key of ship-a is not a base64 Ed25519 public key")
        );
        assert_eq!(
            err(Mode::Master, &[("SYNC_REQUIRE_KNOWN_SHIPS", "maybe")]),
            "SYNC_REQUIRE_KNOWN_SHIPS: is not true or false"
        );
    }

    #[test]
    fn bad_values_give_one_line_naming_the_accepted_values() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "SYNC_BATCH_SIZE",
                "abc",
                "SYNC_BATCH_SIZE: \"abc\" is not a whole number from 1 to 10000",
            ),
            (
                "SYNC_BATCH_SIZE",
                "0",
                "SYNC_BATCH_SIZE: \"0\" is not a whole number from 1 to 10000",
            ),
            (
                "SYNC_RETRY_ATTEMPTS",
                "21",
                "SYNC_RETRY_ATTEMPTS: \"21\" is not a whole number from 0 to 20",
            ),
            (
                "SYNC_LOG_RETENTION_HOURS",
                "0",
                "SYNC_LOG_RETENTION_HOURS: \"0\" is not a whole number from 1 to 87600 (hours)",
            ),
            (
                "SYNC_ACK_TIMEOUT",
                "5",
                "SYNC_ACK_TIMEOUT: \"5\" is not a whole number from 1000 to 86400000 (milliseconds)",
            ),
            (
                "DATABASE_CLIENT",
                "mysql",
                "DATABASE_CLIENT: \"mysql\" is not one of postgres, sqlite",
            ),
            (
                "SYNC_MODE",
                "x",
                "SYNC_MODE: \"x\" does not match this binary (replica); unset it or set it to replica",
            ),
            (
                "SYNC_SHIP_ID",
                "a b",
                "SYNC_SHIP_ID: \"a b\" is not a ship id; use 1 to 64 of A-Z a-z 0-9 . _ - (not \"master\")",
            ),
            (
                "SYNC_CONFLICT_POLICY",
                "ours",
                "SYNC_CONFLICT_POLICY: \"ours\" is not one of manual, master-wins, ship-wins, last-writer-wins",
            ),
            (
                "SYNC_CONFLICT_POLICIES",
                "api::a.a",
                "SYNC_CONFLICT_POLICIES: \"api::a.a\" is not content-type=policy (policy one of manual, master-wins, ship-wins, last-writer-wins)",
            ),
            (
                "SYNC_CONFLICT_POLICIES",
                "a=manual,a=ship-wins",
                "SYNC_CONFLICT_POLICIES: a is listed twice",
            ),
            (
                "SYNC_CONTENT_TYPES",
                "a,b c",
                "SYNC_CONTENT_TYPES: \"b c\" is not a content type; use 1 to 128 of A-Z a-z 0-9 . _ - :",
            ),
            (
                "SYNC_CONTENT_TYPES",
                "api::a.a=Articles",
                "SYNC_CONTENT_TYPES: \"Articles\" is not a plural route name; use 1 to 64 of a-z 0-9 - _, beginning with a letter",
            ),
            (
                "SYNC_CONTENT_TYPES",
                "api::document.document=documents",
                "SYNC_CONTENT_TYPES: api::document.document: /api/documents is the node's own route; name another plural (api::document.document=...)",
            ),
            (
                "SYNC_CONTENT_TYPES",
                "api::a.a=things,api::b.b=things",
                "SYNC_CONTENT_TYPES: api::a.a and api::b.b both take /api/things; name another plural for one of them",
            ),
            (
                "SYNC_INDEXES",
                "status, address.city",
                "SYNC_INDEXES: \"address.city\" cannot be indexed; use 1 to 40 of A-Z a-z 0-9 _",
            ),
            (
                "SYNC_CONTENT_TYPES",
                "api::a.a=x,api::a.a=y",
                "SYNC_CONTENT_TYPES: api::a.a is given two plurals, x and y; give it one",
            ),
            (
                "KAFKA_TOPIC_SHIP_UPDATES",
                "..",
                "KAFKA_TOPIC_SHIP_UPDATES: \"..\" is not a Kafka topic name; use 1 to 249 of A-Z a-z 0-9 . _ - (not \".\" or \"..\")",
            ),
            (
                "KAFKA_TOPIC_MASTER_UPDATES",
                "ship-updates",
                "KAFKA_TOPIC_MASTER_UPDATES: \"ship-updates\" is also KAFKA_TOPIC_SHIP_UPDATES; the two topics must differ",
            ),
            (
                "KAFKA_TOPIC_SNAPSHOTS",
                "master-updates",
                "KAFKA_TOPIC_SNAPSHOTS: \"master-updates\" is also another topic; the three topics must differ",
            ),
            (
                "KAFKA_REPLICATION_FACTOR",
                "40000",
                "KAFKA_REPLICATION_FACTOR: \"40000\" is not a whole number from 1 to 32767",
            ),
            (
                "KAFKA_SHIP_UPDATES_PARTITIONS",
                "1001",
                "KAFKA_SHIP_UPDATES_PARTITIONS: \"1001\" is not a whole number from 1 to 1000",
            ),
            (
                "KAFKA_COMPRESSION",
                "brotli",
                "KAFKA_COMPRESSION: \"brotli\" is not one of none, gzip, lz4, snappy, zstd",
            ),
            (
                "KAFKA_SSL_ENABLED",
                "maybe",
                "KAFKA_SSL_ENABLED: \"maybe\" is not true or false",
            ),
            ("HOST", "a b", "HOST: \"a b\" is not a host name or IP address"),
            (
                "PORT",
                "70000",
                "PORT: \"70000\" is not a whole number from 1 to 65535",
            ),
            (
                "SYNC_ADMIN_TOKEN",
                "has space",
                "SYNC_ADMIN_TOKEN: contains whitespace; use a token without spaces, tabs or line breaks",
            ),
            (
                "SYNC_OFFLINE_THRESHOLD",
                "29999",
                "SYNC_OFFLINE_THRESHOLD: \"29999\" is not a whole number from 30000 to 259200000 (milliseconds, at least SYNC_HEARTBEAT_INTERVAL)",
            ),
        ];
        for (name, value, expected) in cases {
            let got = err(Mode::Replica, &[SHIP, (name, value)]);
            assert_eq!(&got, expected);
            assert!(!got.contains('\n'));
        }
        assert_eq!(
            err(Mode::Master, &[("SYNC_MODE", "replica")]),
            "SYNC_MODE: \"replica\" does not match this binary (master); unset it or set it to master"
        );
        let same = err(
            Mode::Master,
            &[("SYNC_ADMIN_TOKEN", "t0k"), ("SYNC_READ_TOKEN", "t0k")],
        );
        assert_eq!(
            same,
            "SYNC_READ_TOKEN: is the same as SYNC_ADMIN_TOKEN; the two tokens must differ"
        );
        assert!(!same.contains("t0k"));
        let userinfo = err(
            Mode::Replica,
            &[
                SHIP,
                ("SYNC_MASTER_URL", "https://ops:hunter2@master.example:1337"),
            ],
        );
        assert!(
            userinfo.starts_with("SYNC_MASTER_URL: holds a user or password"),
            "{userinfo}"
        );
        assert!(!userinfo.contains("hunter2"));
        assert!(
            load(
                Mode::Replica,
                &[SHIP, ("SYNC_MASTER_URL", "http://master.example/a@b")]
            )
            .is_ok()
        );
    }

    #[test]
    fn webhooks_are_urls_or_json_with_events_and_headers_and_need_a_secret() {
        const KEY: (&str, &str) = ("SYNC_WEBHOOK_SECRET", "0123456789abcdef");
        let s = load(
            Mode::Master,
            &[
                (
                    "SYNC_WEBHOOKS",
                    " http://a.example/h , https://b.example:8443/h?t=1",
                ),
                KEY,
            ],
        )
        .unwrap();
        let urls: Vec<_> = s.webhooks.iter().map(|w| w.url.expose()).collect();
        assert_eq!(urls, ["http://a.example/h", "https://b.example:8443/h?t=1"]);
        assert!(
            s.webhooks
                .iter()
                .all(|w| w.events.is_empty() && w.headers.is_empty())
        );
        assert_eq!(s.webhook_secret.as_ref().map(Secret::expose), Some(KEY.1));

        let json = r#"[{"url":"https://h.example/in","events":["entry.delete"],"headers":{"X-Api-Key":"k3y-value"}}]"#;
        let s = load(Mode::Replica, &[SHIP, ("SYNC_WEBHOOKS", json), KEY]).unwrap();
        let hook = &s.webhooks[0];
        assert_eq!(hook.events.iter().collect::<Vec<_>>(), ["entry.delete"]);
        assert_eq!(hook.headers[0].0, "X-Api-Key");
        assert_eq!(hook.headers[0].1.expose(), "k3y-value");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("k3y-value") && !shown.contains("h.example") && !shown.contains("0123456789"),
            "{shown}"
        );
        assert!(load(Mode::Master, &[]).unwrap().webhooks.is_empty());

        for (hooks, secret, message) in [
            (
                "http://a/h",
                None,
                "SYNC_WEBHOOKS: needs SYNC_WEBHOOK_SECRET, the key receivers check each body's signature with",
            ),
            (
                "http://a/h",
                Some("short"),
                "SYNC_WEBHOOK_SECRET: is too short; use at least 16 characters",
            ),
            (
                "ftp://a/h",
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 1 is not an http:// or https:// URL",
            ),
            (
                "http://a/h,http:///h",
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 2 is not a URL with a host (and no spaces or other than ASCII)",
            ),
            (
                "http://a/h,http://a/h",
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 2 repeats an earlier URL",
            ),
            (
                r#"[{"url":"http://a/h","events":["entry.publish"]}]"#,
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 1 asks for event \"entry.publish\"; use entry.create, entry.update, entry.delete",
            ),
            (
                r#"[{"url":"http://a/h","headers":{"Content-Type":"text/plain"}}]"#,
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 1 sets header Content-Type, which the node sets",
            ),
            (
                r#"[{"url":"http://a/h","headers":{"X-A":"a\nb"}}]"#,
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 1 has a line break or other than ASCII in header X-A",
            ),
            (
                "http://?t=secret",
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 1 is not a URL with a host (and no spaces or other than ASCII)",
            ),
            (
                "http://u@/h",
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 1 is not a URL with a host (and no spaces or other than ASCII)",
            ),
            (
                r#"[{"url":"http://a/h","headers":{"x-offline-sync-event":"x"}}]"#,
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 1 sets header x-offline-sync-event, which the node sets",
            ),
            (
                r#"[{"url":"http://a/h","headers":{"X A":"b"}}]"#,
                Some(KEY.1),
                "SYNC_WEBHOOKS: webhook 1 has header \"X A\", not a header name",
            ),
        ] {
            let mut env = vec![("SYNC_WEBHOOKS", hooks)];
            env.extend(secret.map(|s| ("SYNC_WEBHOOK_SECRET", s)));
            assert_eq!(err(Mode::Master, &env), message, "{hooks}");
        }
        let garbled = err(Mode::Master, &[("SYNC_WEBHOOKS", "[{\"url\":1}]"), KEY]);
        assert!(
            garbled.starts_with("SYNC_WEBHOOKS: is not a JSON list of"),
            "{garbled}"
        );
    }

    #[test]
    fn a_replica_needs_a_ship_id_and_the_master_ignores_it() {
        assert_eq!(
            err(Mode::Replica, &[]),
            "SYNC_SHIP_ID: required by the replica: this ship's id; use 1 to 64 of A-Z a-z 0-9 . _ - (not \"master\")"
        );
        assert!(err(Mode::Replica, &[("SYNC_SHIP_ID", "master")]).starts_with("SYNC_SHIP_ID: \"master\""));
        let m = load(Mode::Master, &[("SYNC_SHIP_ID", "not valid!")]).unwrap();
        assert!(m.ship_id.is_none());
    }

    #[test]
    fn no_token_forces_loopback() {
        let open = load(Mode::Master, &[("HOST", "0.0.0.0")]).unwrap().http;
        assert!(open.loopback_only);
        assert_eq!(open.host, "127.0.0.1");
        let read_only = load(Mode::Master, &[("SYNC_READ_TOKEN", "r")]).unwrap().http;
        assert!(!read_only.loopback_only);
        assert_eq!(read_only.host, "0.0.0.0");
        assert!(read_only.admin_token.is_none());
    }

    #[test]
    fn retry_delay_doubles_for_the_attempts_then_stays_under_an_hour() {
        let ms = Duration::from_millis;
        assert_eq!(retry_schedule(ms(5000), 3).max, ms(40_000));
        assert_eq!(retry_schedule(ms(5000), 0).max, ms(5000));
        assert_eq!(retry_schedule(ms(1), 20).max, ms(1 << 20));
        assert_eq!(retry_schedule(ms(1000), 20).max, Duration::from_secs(3600));
        assert_eq!(
            retry_schedule(Duration::from_secs(3600), 20).max,
            Duration::from_secs(3600)
        );
        let r = retry_schedule(ms(100), 2);
        assert_eq!(r.delay(0, 1.0), ms(100));
        assert_eq!(r.delay(2, 1.0), ms(400));
        assert_eq!(r.delay(9, 1.0), ms(400));
    }

    #[test]
    fn heartbeat_and_offline_threshold_default_from_the_connectivity_check() {
        let s = load(
            Mode::Replica,
            &[SHIP, ("SYNC_CONNECTIVITY_CHECK_INTERVAL", "1000")],
        )
        .unwrap();
        assert_eq!(s.replica.unwrap().heartbeat_interval, Duration::from_secs(1));
        assert_eq!(s.master.offline_after, Duration::from_secs(3));
    }

    #[test]
    fn settings_lists_every_name_the_loader_reads() {
        let mut read = BTreeSet::new();
        let runs: [(Mode, &[(&str, &str)]); 3] = [
            (Mode::Replica, ALL),
            (Mode::Master, &[("DATABASE_CLIENT", "sqlite")]),
            (Mode::Master, &[("DATABASE_URL", "sqlite:x.db")]),
        ];
        for (mode, pairs) in runs {
            let v = Values::load(None, env(pairs)).unwrap();
            resolve(mode, &v).unwrap();
            read.extend(v.read_names());
        }
        let documented: BTreeSet<_> = loaded_names().collect();
        assert_eq!(read, documented);
        assert!(crate::SETTINGS.iter().any(|s| s.name == "RUST_LOG"));
    }
}
