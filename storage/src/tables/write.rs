//! Row changes as part of a commit. See the module docs of
//! [`crate::tables`] for how the committer checks and applies them.

use crate::catalog::{ColumnType, TableId};
use crate::codec::{check_arity, encode_fields, encode_row, Value};
use crate::error::Result;
use crate::tables::TableHandle;

/// The `op` of a changelog record that inserted a row.
pub const OP_INSERT: &str = "insert";
/// The `op` of a changelog record that replaced a row.
pub const OP_UPDATE: &str = "update";
/// The `op` of a changelog record that deleted a row (it carries the old row).
pub const OP_DELETE: &str = "delete";

/// What a row write requires of the row's current state when it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: the write applies whatever the row is.
    Any,
    /// The key has no row (INSERT).
    Absent,
    /// The row exists at exactly this version (what the writer read).
    Version(u64),
}

/// One change to one row. See [`crate::WriteSet::rows`].
#[derive(Debug, Clone)]
pub struct RowWrite {
    pub table: TableId,
    /// The encoded primary key ([`crate::tables::key`]).
    pub key: Vec<u8>,
    pub expect: Expect,
    /// The new row record, or `None` to delete the row.
    pub(crate) row: Option<Vec<u8>>,
    /// The changelog record: `op`, then the new row (the old row for a delete).
    pub(crate) change: Vec<u8>,
    /// Columns of the definition the write was made under: the committer
    /// refuses it if the table has been altered since.
    pub(crate) columns: usize,
}

impl RowWrite {
    /// A write that makes `values` the row of its key (`op` is
    /// [`OP_INSERT`] or [`OP_UPDATE`]). The values must already fit the
    /// column types (`NOT NULL` is checked by the caller).
    pub fn put(table: &TableHandle, op: &'static str, expect: Expect, values: &[Value]) -> Result<RowWrite> {
        let key = table.key_of(values)?;
        let row = encode_row(table.types(), None, values)?;
        let change = change_record(table, op, values)?;
        Ok(RowWrite { table: table.def.id, key, expect, row: Some(row), change, columns: table.def.columns.len() })
    }

    /// A write that deletes the row `old` (its current values).
    pub fn delete(table: &TableHandle, expect: Expect, old: &[Value]) -> Result<RowWrite> {
        let key = table.key_of(old)?;
        let change = change_record(table, OP_DELETE, old)?;
        Ok(RowWrite { table: table.def.id, key, expect, row: None, change, columns: table.def.columns.len() })
    }

    /// Whether this write deletes its row.
    pub fn is_delete(&self) -> bool {
        self.row.is_none()
    }
}

fn change_record(table: &TableHandle, op: &str, values: &[Value]) -> Result<Vec<u8>> {
    let types = table.types();
    check_arity(values, types)?;
    let op = Value::Text(op.to_string());
    let fields = std::iter::once((&ColumnType::Text, &op)).chain(types.iter().zip(values));
    encode_fields(Some(table.key_text(values).as_bytes()), values.len() + 1, fields)
}
