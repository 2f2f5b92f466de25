//! Errors of the settings loader.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the settings could not be loaded. Every variant displays as one line that names the
/// setting or the file, so a binary can print it and exit with status 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing, unknown or has a value outside the accepted ones. Displayed as
    /// `SETTING: message`, e.g. `SYNC_BATCH_SIZE: "abc" is not a whole number from 1 to 10000`.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting's name (`SYNC_BATCH_SIZE`), or the key as written in the settings file
        /// when that key is unknown.
        setting: String,
        /// What is wrong and which values are accepted; never contains a secret.
        message: String,
    },
    /// The settings file could not be read or is not valid TOML. The cause is repeated in the
    /// text (flattened to one line) because the binaries print only this line.
    #[error("settings file {}: {source}", path.display())]
    File {
        /// The file given to the loader.
        path: PathBuf,
        /// Why it could not be read; a TOML syntax error has kind
        /// [`InvalidData`](std::io::ErrorKind::InvalidData).
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::Invalid`] for `setting`.
    pub(crate) fn invalid(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

impl From<offline_sync_kafka::SettingError> for Error {
    fn from(e: offline_sync_kafka::SettingError) -> Self {
        Self::invalid(e.setting, e.message)
    }
}

/// Joins the lines of a multi-line message (TOML parse errors draw the offending line) into one.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // Skip the source excerpt and caret lines of a TOML error: they start with `|` or `N |`.
        let excerpt = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start()
            .starts_with('|');
        if excerpt {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_displays_on_one_line() {
        let err = Error::invalid("SYNC_BATCH_SIZE", "\"abc\" is not a whole number from 1 to 10000");
        assert_eq!(
            err.to_string(),
            "SYNC_BATCH_SIZE: \"abc\" is not a whole number from 1 to 10000"
        );
    }

    #[test]
    fn multi_line_messages_are_flattened() {
        let text =
            "TOML parse error at line 1, column 5\n  |\n1 | a = \n  |     ^\nstring values must be quoted\n";
        assert_eq!(
            one_line(text),
            "TOML parse error at line 1, column 5: string values must be quoted"
        );
    }
}
