//! Typed settings of the offline-sync `master` and `replica` binaries.
//!
//! [`Settings::load`] reads an optional TOML file and then the process environment, which
//! wins; an empty environment value counts as unset. The file uses the environment's names,
//! in lowercase or uppercase (`sync_ship_id = "ship-1"`), with string, whole number or
//! boolean values; an unknown name is refused so typos surface at start-up. Only the names
//! of [`SETTINGS`] are read from the environment.
//!
//! Every invalid value is refused with one line, `SETTING: what is wrong and what is
//! accepted` ([`Error::Invalid`]), which the binaries print before exiting with status 2.
//! Secrets (database password, SASL password, API tokens) never appear in `Debug` output or
//! in error messages.
//!
//! [`SETTINGS`] documents every setting; [`help_text`] renders it for `--help` and
//! [`markdown_table`] for the README.

mod database;
mod docs;
mod error;
mod secret;
mod settings;
mod values;

pub use database::{DatabaseClient, DatabaseSettings};
pub use docs::{Kind, Range, SETTINGS, SettingDoc, help_text, markdown_table};
pub use error::{Error, Result};
pub use secret::Secret;
pub use settings::{HttpSettings, MasterApi, Mode, Settings, WEBHOOK_EVENTS, WebhookSettings};
