//! Session configuration parameters: `SET`, `SHOW`, `RESET`.
//!
//! Brikk keeps the parameters drivers read or set at connect time, so
//! their start-up sequences succeed; values are per session.

use std::collections::BTreeMap;

/// Parameters every session starts with (name, value). Names are lowercase.
pub const DEFAULTS: [(&str, &str); 14] = [
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", crate::SERVER_VERSION),
    ("standard_conforming_strings", "on"),
    ("timezone", "UTC"),
];

/// One session's parameters.
#[derive(Debug, Clone)]
pub struct Vars {
    values: BTreeMap<String, String>,
}

impl Default for Vars {
    fn default() -> Vars {
        Vars { values: DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }
}

impl Vars {
    /// The value of `name`; `transaction_isolation` follows the default.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "transaction_isolation" | "transaction isolation level" => {
                self.values.get("default_transaction_isolation").cloned()
            }
            "server_version_num" => Some("150000".into()),
            "is_superuser" => Some("on".into()),
            "session_authorization" => Some("brikk".into()),
            _ => self.values.get(&name).cloned(),
        }
    }

    /// Sets `name`; unknown names are accepted, as Postgres accepts
    /// placeholder (dotted) names, so driver options do not fail.
    pub fn set(&mut self, name: &str, value: String) {
        self.values.insert(name.to_ascii_lowercase(), value);
    }

    /// Restores `name` to its default (or removes it).
    pub fn reset(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        match DEFAULTS.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => self.values.insert(name, v.to_string()),
            None => self.values.remove(&name),
        };
    }

    /// All parameters, for `SHOW ALL`.
    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }
}
