//! Session configuration parameters: `SET`, `SHOW`, `RESET`.
//!
//! Brikk keeps the parameters drivers read or set at connect time, so
//! their start-up sequences succeed; values are per session.
//!
//! `TimeZone` is checked when set ([`time_zone`]) and applied: the session
//! shows `timestamptz` values in it ([`crate::Output::in_time_zone`]) and
//! reads a `timestamptz` written without an offset in it.
//! `statement_timeout` is checked when set ([`timeout_millis`]) and applied
//! by the server: a statement that runs longer is canceled (`57014`).

use std::collections::BTreeMap;

use datafusion::arrow::array::timezone::Tz;

use crate::error::{Error, Result};

/// The zone every session starts in (Arrow spells UTC `+00:00`:
/// [`crate::types::UTC`]).
pub const DEFAULT_ZONE: &str = "UTC";

/// Parameters every session starts with (name, value). Names are lowercase.
pub const DEFAULTS: [(&str, &str); 16] = [
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    // What `pg_am` calls Postgres' table access method (SQLAlchemy's
    // reflection compares a table's with it).
    ("default_table_access_method", "heap"),
    ("default_transaction_isolation", "read committed"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", crate::SERVER_VERSION),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
];

/// Parameters whose changes Postgres reports to the client in
/// ParameterStatus (its `GUC_REPORT` ones a session can change): the key
/// here, and the name reported. Drivers follow them: psycopg shows
/// `timestamptz` values in the `TimeZone` last reported.
const REPORTED: [(&str, &str); 2] = [("timezone", "TimeZone"), ("application_name", "application_name")];

/// Read-only parameters whose values follow from others or from the
/// server ([`Vars::get`] answers them, `SET` does not change them).
const DERIVED: [&str; 4] = ["server_version_num", "is_superuser", "session_authorization", "transaction_isolation"];

/// One parameter of a session, as `pg_settings` shows it ([`Vars::settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub setting: String,
    pub source: &'static str,
    pub boot_val: Option<String>,
    pub reset_val: Option<String>,
}

/// One session's parameters.
#[derive(Debug, Clone)]
pub struct Vars {
    values: BTreeMap<String, String>,
    /// Values given at start-up, which `RESET` returns to.
    started: BTreeMap<String, String>,
    /// Reported parameters changed since [`Vars::take_changed`]: (name as
    /// reported, value).
    changed: Vec<(&'static str, String)>,
    /// `statement_timeout` in milliseconds (0: none), kept with the value.
    timeout_ms: u64,
    /// The session's process id as clients know it: the one the server
    /// sent in its BackendKeyData (and cancels by), or a number of its own
    /// for a session opened in-process. `pg_backend_pid()` returns it, and
    /// the session's notifications carry it.
    backend_pid: i32,
}

/// The next process id of a session opened in-process.
static NEXT_LOCAL_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

impl Default for Vars {
    fn default() -> Vars {
        Vars {
            values: DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            started: BTreeMap::new(),
            changed: Vec::new(),
            timeout_ms: 0,
            backend_pid: NEXT_LOCAL_PID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl Vars {
    /// The session's process id (see the field).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// Sets the process id the server gave the session's connection.
    pub(crate) fn set_backend_pid(&mut self, pid: i32) {
        self.backend_pid = pid;
    }

    /// The session's `application_name` ('' unless set).
    pub fn application_name(&self) -> &str {
        self.values.get("application_name").map_or("", String::as_str)
    }

    /// The value of `name`; `transaction_isolation` follows the default.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "time zone" => self.values.get("timezone").cloned(),
            "transaction isolation level" => self.derived("transaction_isolation"),
            _ => self.derived(&name).or_else(|| self.values.get(&name).cloned()),
        }
    }

    /// The value of one of the read-only parameters of [`DERIVED`].
    fn derived(&self, name: &str) -> Option<String> {
        match name {
            "transaction_isolation" => self.values.get("default_transaction_isolation").cloned(),
            "server_version_num" => Some(crate::SERVER_VERSION_NUM.into()),
            "is_superuser" => Some("on".into()),
            "session_authorization" => Some(crate::USER.into()),
            _ => None,
        }
    }

    /// Sets `name`; unknown names are accepted, as Postgres accepts
    /// placeholder (dotted) names, so driver options do not fail. A value
    /// `TimeZone` cannot take is refused with 22023 and changes nothing.
    pub fn set(&mut self, name: &str, value: String) -> Result<()> {
        let name = key_of(name);
        if name == "timezone" {
            return self.set_time_zone(&value);
        }
        let value = match name.as_str() {
            "statement_timeout" => {
                self.timeout_ms = timeout_millis(&value)?;
                show_millis(self.timeout_ms)
            }
            _ => value,
        };
        self.values.insert(name.clone(), value);
        self.note_change(&name);
        Ok(())
    }

    /// Sets `TimeZone` (see [`time_zone`] for the values it takes);
    /// `DEFAULT` and `LOCAL` reset it, as in Postgres.
    pub fn set_time_zone(&mut self, value: &str) -> Result<()> {
        if ["default", "local"].iter().any(|d| value.trim().eq_ignore_ascii_case(d)) {
            self.reset("timezone");
            return Ok(());
        }
        let zone = time_zone(value)?;
        self.values.insert("timezone".into(), zone);
        self.note_change("timezone");
        Ok(())
    }

    /// How long a statement may run before the server cancels it
    /// (`statement_timeout`); `None`: as long as it takes.
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        (self.timeout_ms > 0).then(|| std::time::Duration::from_millis(self.timeout_ms))
    }

    /// The session's zone, as [`time_zone`] spells it: `UTC`, an IANA
    /// name, or a fixed offset `+05:30`.
    pub fn zone(&self) -> &str {
        self.values.get("timezone").map_or(DEFAULT_ZONE, String::as_str)
    }

    /// Sets `name` as the connection's start-up parameters do: checked as
    /// [`Vars::set`] checks it, and the value `RESET` returns to. Not a
    /// change to report: the start-up reports it.
    pub fn start_with(&mut self, name: &str, value: &str) -> Result<()> {
        self.set(name, value.to_string())?;
        self.changed.clear();
        let key = key_of(name);
        if let Some(v) = self.values.get(&key) {
            self.started.insert(key, v.clone());
        }
        Ok(())
    }

    /// Restores `name` to its start-up value or default (or removes it).
    pub fn reset(&mut self, name: &str) {
        let name = key_of(name);
        let default = self
            .started
            .get(&name)
            .cloned()
            .or_else(|| DEFAULTS.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
        match default {
            Some(v) => self.values.insert(name.clone(), v),
            None => self.values.remove(&name),
        };
        self.note_change(&name);
        self.follow_timeout();
    }

    /// Every parameter to its start-up value or default (`RESET ALL`).
    pub fn reset_all(&mut self) {
        let names: Vec<String> = self.values.keys().cloned().collect();
        for name in names {
            self.reset(&name);
        }
    }

    /// The reported parameters changed since the last call, with their new
    /// values (name as Postgres reports it, value), for the server to send
    /// in ParameterStatus. Changes back and forth are reported too, as
    /// Postgres does.
    pub fn take_changed(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.changed)
    }

    fn note_change(&mut self, key: &str) {
        let Some((_, reported)) = REPORTED.iter().find(|(k, _)| *k == key) else { return };
        let value = self.values.get(key).cloned().unwrap_or_default();
        self.changed.retain(|(name, _)| name != reported);
        self.changed.push((reported, value));
    }

    /// Takes back every change made since `earlier` was cloned from these
    /// parameters (the SETs of a transaction rolled back); a reported
    /// parameter whose value changes back is reported again. Start-up
    /// values stay.
    pub fn restore(&mut self, earlier: &Vars) {
        let keys: std::collections::BTreeSet<String> =
            self.values.keys().chain(earlier.values.keys()).cloned().collect();
        for key in keys {
            if self.values.get(&key) == earlier.values.get(&key) {
                continue;
            }
            match earlier.values.get(&key) {
                Some(v) => self.values.insert(key.clone(), v.clone()),
                None => self.values.remove(&key),
            };
            self.note_change(&key);
        }
        self.follow_timeout();
    }

    /// Reads `statement_timeout` again after its value was replaced by one
    /// already checked (a default, a start-up or earlier value).
    fn follow_timeout(&mut self) {
        self.timeout_ms = self.values.get("statement_timeout").and_then(|v| timeout_millis(v).ok()).unwrap_or(0);
    }

    /// Every name [`Vars::get`] knows, with its value: the parameters and
    /// the read-only ones derived from them.
    pub fn known(&self) -> Vec<(String, String)> {
        let names = self.values.keys().map(String::as_str).chain(DERIVED);
        names.filter_map(|n| Some((n.to_string(), self.get(n)?))).collect()
    }

    /// The session's parameters as `pg_settings` lists them: value, where
    /// it came from (`default`, `client` at start-up, `session` by `SET`),
    /// the value before start-up (`boot_val`) and the one `RESET` returns
    /// to (`reset_val`).
    pub fn settings(&self) -> Vec<Setting> {
        let boot = |name: &str| DEFAULTS.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        self.values
            .iter()
            .map(|(name, value)| {
                let reset_val = self.started.get(name).cloned().or_else(|| boot(name));
                let source = match (reset_val.as_deref() == Some(value.as_str()), self.started.contains_key(name)) {
                    (true, true) => "client",
                    (true, false) => "default",
                    (false, _) => "session",
                };
                Setting { name: name.clone(), setting: value.clone(), source, boot_val: boot(name), reset_val }
            })
            .collect()
    }

    /// All parameters, for `SHOW ALL`.
    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }
}

/// The key of parameter `name`: lower case, `TIME ZONE` as `timezone`.
fn key_of(name: &str) -> String {
    match name.to_ascii_lowercase() {
        n if n == "time zone" => "timezone".to_string(),
        n => n,
    }
}

/// The milliseconds a `statement_timeout` value gives, as Postgres reads
/// it: a number of milliseconds (`5000`), or a number with a unit (`'5s'`,
/// `'1.5 min'`; `us`, `ms`, `s`, `min`, `h`, `d`); 0 turns the timeout off.
/// Anything else, or more than 2147483647 ms, is refused with 22023.
pub fn timeout_millis(value: &str) -> Result<u64> {
    let v = value.trim().to_ascii_lowercase();
    let invalid = || {
        Error::InvalidParameter(format!(
            "invalid value for parameter \"statement_timeout\": \"{value}\" \
             (a number of milliseconds, or one with a unit: us, ms, s, min, h, d)"
        ))
    };
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(v.len());
    let number: f64 = v[..split].parse().map_err(|_| invalid())?;
    let scale = match v[split..].trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return Err(invalid()),
    };
    let ms = (number * scale).round();
    if !(0.0..=f64::from(i32::MAX)).contains(&ms) {
        return Err(Error::InvalidParameter(format!(
            "{ms} ms is outside the valid range for parameter \"statement_timeout\" (0 .. 2147483647)"
        )));
    }
    Ok(ms as u64)
}

/// `ms` as `SHOW` gives it: in the largest unit it is a whole number of.
fn show_millis(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    let unit = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s")]
        .into_iter()
        .find(|(size, _)| ms.is_multiple_of(*size));
    match unit {
        Some((size, name)) => format!("{}{name}", ms / size),
        None => format!("{ms}ms"),
    }
}

/// The zone `value` names, spelled so Arrow's timestamp types accept it:
///
/// * `UTC`, `GMT`, `Z`, `LOCAL` and `DEFAULT` (any case) are `UTC`;
/// * an IANA zone name (`America/New_York`; also written in lower case or
///   in capitals, as `america/new_york` or `est5edt`);
/// * a number of hours east of Greenwich, as `SET TIME ZONE -7` or `5.5`
///   give it, is a fixed offset (`-07:00`, `+05:30`).
///
/// Anything else is refused with 22023. So are offset strings such as
/// `'+03:00'`: Postgres reads them as POSIX zones, whose sign is the
/// opposite of ISO 8601's, and silently flipping a user's offset would be
/// worse than asking for a zone name or a number of hours.
pub fn time_zone(value: &str) -> Result<String> {
    let v = value.trim();
    let invalid = || {
        Error::InvalidParameter(format!(
            "invalid value for parameter \"TimeZone\": \"{value}\" \
             (use a zone name such as 'Europe/Berlin', 'UTC', or hours east of UTC such as -7)"
        ))
    };
    if ["utc", "gmt", "z", "local", "default", "etc/utc", "zulu", "universal"]
        .contains(&v.to_ascii_lowercase().as_str())
    {
        return Ok(DEFAULT_ZONE.into());
    }
    if let Ok(hours) = v.parse::<f64>() {
        if !hours.is_finite() || hours.abs() > 15.0 {
            return Err(invalid());
        }
        let minutes = (hours * 60.0).round() as i64;
        let sign = if minutes < 0 { '-' } else { '+' };
        return Ok(format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60));
    }
    if v.starts_with(['+', '-']) {
        return Err(invalid());
    }
    // Zone names are matched without regard to case, as in Postgres: as
    // given, then capitalised per word (`america/new_york`), then in
    // capitals (`est5edt`).
    let words = |s: &str| -> String {
        let mut out = String::with_capacity(s.len());
        let mut start = true;
        for c in s.chars() {
            out.extend(if start { c.to_uppercase().collect::<Vec<_>>() } else { c.to_lowercase().collect() });
            start = matches!(c, '/' | '_' | '-');
        }
        out
    };
    [v.to_string(), words(v), v.to_ascii_uppercase()]
        .into_iter()
        .find(|name| name.parse::<Tz>().is_ok())
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_checked_and_spelled_for_arrow() {
        assert_eq!(time_zone("utc").unwrap(), "UTC");
        assert_eq!(time_zone("DEFAULT").unwrap(), "UTC");
        assert_eq!(time_zone("america/new_york").unwrap(), "America/New_York");
        assert_eq!(time_zone("-7").unwrap(), "-07:00");
        assert_eq!(time_zone("5.5").unwrap(), "+05:30");
        for bad in ["Nowhere/Bogus", "+03:00", "99", ""] {
            assert!(matches!(time_zone(bad), Err(Error::InvalidParameter(_))), "{bad}");
        }
        for good in ["UTC", "America/New_York", "-07:00", "+05:30"] {
            let t: std::result::Result<Tz, _> = good.parse();
            assert!(t.is_ok(), "arrow reads {good}");
        }
    }

    #[test]
    fn statement_timeouts_are_read_as_postgres_reads_them() {
        for (given, ms, shown) in [
            ("0", 0, "0"),
            ("1500", 1_500, "1500ms"),
            ("5s", 5_000, "5s"),
            (" 1.5 min ", 90_000, "90s"),
            ("2min", 120_000, "2min"),
            ("1h", 3_600_000, "1h"),
            ("2500us", 3, "3ms"),
        ] {
            assert_eq!(timeout_millis(given).unwrap(), ms, "{given}");
            assert_eq!(show_millis(ms), shown);
        }
        for bad in ["", "soon", "5 parsecs", "-1", "3000000000"] {
            assert!(matches!(timeout_millis(bad), Err(Error::InvalidParameter(_))), "{bad}");
        }
        let mut vars = Vars::default();
        assert_eq!(vars.statement_timeout(), None);
        vars.set("statement_timeout", "2s".into()).unwrap();
        assert_eq!(vars.statement_timeout(), Some(std::time::Duration::from_secs(2)));
        assert_eq!(vars.get("statement_timeout").as_deref(), Some("2s"));
        assert!(vars.set("statement_timeout", "never".into()).is_err());
        assert_eq!(vars.statement_timeout(), Some(std::time::Duration::from_secs(2)), "unchanged");
        let before = vars.clone();
        vars.set("statement_timeout", "0".into()).unwrap();
        vars.restore(&before);
        assert_eq!(vars.statement_timeout(), Some(std::time::Duration::from_secs(2)), "restored");
        vars.reset("statement_timeout");
        assert_eq!(vars.statement_timeout(), None);
    }

    #[test]
    fn a_refused_time_zone_changes_nothing() {
        let mut vars = Vars::default();
        vars.set("TimeZone", "Europe/Berlin".into()).unwrap();
        assert!(vars.set("timezone", "Mars/Olympus".into()).is_err());
        assert_eq!(vars.zone(), "Europe/Berlin");
        assert_eq!(vars.get("time zone").as_deref(), Some("Europe/Berlin"));
        vars.reset("time zone");
        assert_eq!(vars.zone(), DEFAULT_ZONE);
    }

    #[test]
    fn reported_changes_are_kept_until_taken_and_reset_returns_to_start_up() {
        let mut vars = Vars::default();
        vars.start_with("TimeZone", "asia/tokyo").unwrap();
        vars.start_with("application_name", "psql").unwrap();
        assert!(vars.take_changed().is_empty(), "start-up values are reported at start-up");
        vars.set("search_path", "x".into()).unwrap();
        assert!(vars.take_changed().is_empty(), "not a reported parameter");
        vars.set_time_zone("-7").unwrap();
        vars.set_time_zone("Europe/Oslo").unwrap();
        vars.set("application_name", "agent".into()).unwrap();
        let changed = vars.take_changed();
        assert_eq!(changed, [("TimeZone", "Europe/Oslo".to_string()), ("application_name", "agent".to_string())]);
        assert!(vars.take_changed().is_empty());
        // A rolled-back transaction's SETs are taken back, and the reported
        // ones reported again.
        let before = vars.clone();
        vars.set("TimeZone", "Asia/Kolkata".into()).unwrap();
        vars.set("work_mem", "64MB".into()).unwrap();
        vars.take_changed();
        vars.restore(&before);
        assert_eq!((vars.zone(), vars.get("work_mem")), ("Europe/Oslo", None));
        assert_eq!(vars.take_changed(), [("TimeZone", "Europe/Oslo".to_string())]);
        vars.set_time_zone("DEFAULT").unwrap();
        assert_eq!(vars.zone(), "Asia/Tokyo");
        vars.reset_all();
        assert_eq!(vars.get("application_name").as_deref(), Some("psql"));
        assert_eq!(vars.get("search_path").as_deref(), Some("public"));
    }
}
