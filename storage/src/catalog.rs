//! Stream definitions: what the catalog column family stores.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Internal, never reused identity of a stream. Keys use it rather than the
/// name, so dropping a stream and creating another of the same name cannot
/// mix their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId(pub u64);

/// The value types a column can hold. Each maps to one Arrow type in the
/// query layer and one Postgres type on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Text,
    Bytea,
    /// Microseconds since the Unix epoch, without time zone.
    Timestamp,
    /// Microseconds since the Unix epoch, UTC.
    TimestampTz,
    /// Days since the Unix epoch.
    Date,
    /// JSON text, kept as written (validated on input).
    Json,
    /// JSON text in a normalized form (validated and re-serialized on input).
    Jsonb,
    /// A UUID, as its canonical text (lower-case hex in 8-4-4-4-12 groups).
    Uuid,
}

impl ColumnType {
    /// The SQL spelling used in `\d` output and error messages.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Boolean => "boolean",
            ColumnType::SmallInt => "smallint",
            ColumnType::Integer => "integer",
            ColumnType::BigInt => "bigint",
            ColumnType::Real => "real",
            ColumnType::Double => "double precision",
            ColumnType::Text => "text",
            ColumnType::Bytea => "bytea",
            ColumnType::Timestamp => "timestamp",
            ColumnType::TimestampTz => "timestamptz",
            ColumnType::Date => "date",
            ColumnType::Json => "json",
            ColumnType::Jsonb => "jsonb",
            ColumnType::Uuid => "uuid",
        }
    }
}

/// One user column of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// `DEFAULT`: the SQL text of the expression an INSERT that leaves the
    /// column out gives it (evaluated per row, as Postgres does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A stream as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDef {
    pub id: StreamId,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Number of partitions, fixed at creation (1..=MAX_PARTITIONS).
    pub partitions: u32,
    /// Index into `columns` of the key column, if the stream is keyed.
    pub key_column: Option<usize>,
    /// Records older than this many microseconds leave the live log:
    /// deleted, or archived when `archive` is set.
    pub retention_micros: Option<i64>,
    /// Creation time, microseconds since the Unix epoch.
    pub created_at_micros: i64,
    /// Each partition's live log keeps at most about this many bytes of
    /// encoded records; older chunks are deleted, or archived when `archive`
    /// is set. (Absent in data directories written before the archive.)
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Whether sealed segments move to Parquet files instead of staying in
    /// (or being dropped from) RocksDB, and where they go.
    #[serde(default)]
    pub archive: Option<ArchiveDef>,
    /// Set when this stream is the changelog of a table: only the table's
    /// writes append to it, and it goes when the table is dropped.
    #[serde(default)]
    pub changelog_of: Option<TableId>,
}

/// Where a stream's archive lives and when a segment of its live log is
/// sealed (and so archived).
///
/// A partition's live log is cut into segments at chunk boundaries. The
/// oldest segment is sealed when it holds `segment_rows` records or
/// `segment_bytes` bytes, when its first record is older than
/// `segment_age_micros`, or when the stream's retention expires it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveDef {
    /// Object-store URL of the archive root (`file:///…`, `s3://bucket/prefix`);
    /// `None` is `<data dir>/archive`.
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default = "default_segment_rows")]
    pub segment_rows: u64,
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    #[serde(default = "default_segment_age")]
    pub segment_age_micros: Option<i64>,
}

/// Records in a full segment unless a stream says otherwise.
pub const DEFAULT_SEGMENT_ROWS: u64 = 1_000_000;
/// Bytes (encoded records) in a full segment unless a stream says otherwise.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 << 20;
/// Age at which a partial segment is sealed unless a stream says otherwise.
pub const DEFAULT_SEGMENT_AGE_MICROS: i64 = 3_600_000_000;

fn default_segment_rows() -> u64 {
    DEFAULT_SEGMENT_ROWS
}
fn default_segment_bytes() -> u64 {
    DEFAULT_SEGMENT_BYTES
}
fn default_segment_age() -> Option<i64> {
    Some(DEFAULT_SEGMENT_AGE_MICROS)
}

impl Default for ArchiveDef {
    fn default() -> ArchiveDef {
        ArchiveDef {
            location: None,
            segment_rows: DEFAULT_SEGMENT_ROWS,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_age_micros: Some(DEFAULT_SEGMENT_AGE_MICROS),
        }
    }
}

/// Upper bound on partitions per stream; keeps a typo from creating millions.
pub const MAX_PARTITIONS: u32 = 1024;

impl StreamDef {
    /// Checks the invariants a definition must hold before it is stored.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(Error::InvalidInput(format!(
                "partitions must be between 1 and {MAX_PARTITIONS}, got {}",
                self.partitions
            )));
        }
        if self.columns.is_empty() {
            return Err(Error::InvalidInput(format!("stream \"{}\" must have at least one column", self.name)));
        }
        if let Some(a) = &self.archive {
            if a.segment_rows == 0 || a.segment_bytes == 0 {
                return Err(Error::InvalidInput("segment_rows and segment_bytes must be positive".into()));
            }
        }
        if self.retention_bytes == Some(0) {
            return Err(Error::InvalidInput("retention_bytes must be positive".into()));
        }
        if let Some(k) = self.key_column {
            if k >= self.columns.len() {
                return Err(Error::InvalidInput("key column out of range".into()));
            }
        }
        Ok(())
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("StreamDef serializes")
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<StreamDef> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("stream definition: {e}")))
    }
}

/// Internal, never reused identity of a table (drawn from the same counter
/// as stream ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId(pub u64);

/// A table with a primary key, as the catalog stores it. Its current rows
/// live in the `tables` column family; every change is also a record of
/// its changelog stream, whose offsets version the rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: TableId,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Indexes into `columns` of the primary key, in key order.
    pub primary_key: Vec<usize>,
    /// The changelog stream (one partition: its offsets order all changes).
    pub changelog: StreamId,
    /// Creation time, microseconds since the Unix epoch.
    pub created_at_micros: i64,
}

/// Name of the changelog stream of table `table`.
pub fn changelog_name(table: &str) -> String {
    format!("{table}$changes")
}

/// The first column of every changelog record: what the change did.
pub const CHANGE_OP_COLUMN: &str = "op";

impl TableDef {
    /// Checks the invariants a definition must hold before it is stored.
    pub fn validate(&self) -> Result<()> {
        if self.columns.is_empty() {
            return Err(Error::InvalidInput(format!("table \"{}\" must have at least one column", self.name)));
        }
        if self.primary_key.is_empty() {
            return Err(Error::InvalidInput(format!("table \"{}\" must have a primary key", self.name)));
        }
        for &k in &self.primary_key {
            let Some(c) = self.columns.get(k) else {
                return Err(Error::InvalidInput("primary key column out of range".into()));
            };
            if c.nullable {
                return Err(Error::InvalidInput(format!("primary key column \"{}\" must be NOT NULL", c.name)));
            }
        }
        Ok(())
    }

    /// The definition of the changelog stream: `op`, then the table's
    /// columns (nullable: a delete carries the old row).
    pub fn changelog_def(&self) -> StreamDef {
        let mut columns =
            vec![ColumnDef { name: CHANGE_OP_COLUMN.into(), ty: ColumnType::Text, nullable: false, default: None }];
        columns.extend(self.columns.iter().cloned());
        StreamDef {
            id: self.changelog,
            name: changelog_name(&self.name),
            columns,
            partitions: 1,
            key_column: None,
            retention_micros: None,
            created_at_micros: self.created_at_micros,
            changelog_of: Some(self.id),
            retention_bytes: None,
            archive: None,
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("TableDef serializes")
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<TableDef> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("table definition: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_written_before_the_archive_still_load() {
        let old = r#"{"id":3,"name":"tasks","columns":[{"name":"a","ty":"Text","nullable":true}],
            "partitions":2,"key_column":null,"retention_micros":5000000,"created_at_micros":1}"#;
        let def = StreamDef::from_bytes(old.as_bytes()).unwrap();
        assert_eq!((def.retention_bytes, def.archive.as_ref()), (None, None));
        let with = StreamDef { archive: Some(ArchiveDef { segment_rows: 7, ..ArchiveDef::default() }), ..def };
        let back = StreamDef::from_bytes(&with.to_bytes()).unwrap();
        assert_eq!(back, with);
        let partial: ArchiveDef = serde_json::from_str(r#"{"location":"file:///x"}"#).unwrap();
        assert_eq!(partial.segment_rows, DEFAULT_SEGMENT_ROWS);
        assert_eq!(partial.segment_age_micros, Some(DEFAULT_SEGMENT_AGE_MICROS));
    }
}
