//! The in-memory face of a table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::catalog::{ColumnType, TableDef};
use crate::codec::{RowLayout, Value};
use crate::error::Result;
use crate::log::StreamHandle;
use crate::tables::key;

/// A table as readers and writers see it: its definition and its
/// changelog stream. `ALTER TABLE` replaces the handle with one of the new
/// definition ([`TableHandle::altered`]) that shares the dropped flag and
/// the identity sequences with the old one.
#[derive(Debug)]
pub struct TableHandle {
    pub def: TableDef,
    /// The changelog; its head is one past the newest version.
    pub changelog: Arc<StreamHandle>,
    layout: RowLayout,
    key_types: Vec<ColumnType>,
    dropped: Arc<AtomicBool>,
    /// Reserved values of the identity columns (see [`crate::tables::sequence`]).
    pub(crate) sequences: Arc<crate::tables::sequence::Sequences>,
}

impl TableHandle {
    pub(crate) fn new(def: TableDef, changelog: Arc<StreamHandle>) -> TableHandle {
        let key_types = def.primary_key.iter().map(|&k| def.columns[k].ty).collect();
        TableHandle {
            layout: RowLayout::new(&def.columns, def.original_columns),
            def,
            changelog,
            key_types,
            dropped: Arc::default(),
            sequences: Arc::default(),
        }
    }

    /// The handle of this table under its altered definition `def`, with
    /// its altered changelog.
    pub(crate) fn altered(&self, def: TableDef, changelog: Arc<StreamHandle>) -> TableHandle {
        TableHandle {
            layout: RowLayout::new(&def.columns, def.original_columns),
            key_types: self.key_types.clone(),
            def,
            changelog,
            dropped: self.dropped.clone(),
            sequences: self.sequences.clone(),
        }
    }

    /// Column types in definition order.
    pub fn types(&self) -> &[ColumnType] {
        &self.layout.types
    }

    /// How rows read under this handle's definition.
    pub fn layout(&self) -> &RowLayout {
        &self.layout
    }

    /// The encoded primary key of a full row.
    pub fn key_of(&self, row: &[Value]) -> Result<Vec<u8>> {
        let values: Vec<&Value> = self.def.primary_key.iter().map(|&k| &row[k]).collect();
        key::encode(&self.key_types, &values)
    }

    /// The encoded primary key from its values, in key order.
    pub fn key_from(&self, values: &[&Value]) -> Result<Vec<u8>> {
        key::encode(&self.key_types, values)
    }

    /// The primary key of a row as text (`a` or `a,b` for composite keys):
    /// the `_key` of its changelog records.
    pub fn key_text(&self, row: &[Value]) -> String {
        match self.def.primary_key.as_slice() {
            [k] => row[*k].key_text().unwrap_or_default(),
            keys => keys.iter().map(|&k| row[k].key_text().unwrap_or_default()).collect::<Vec<_>>().join(","),
        }
    }

    /// Whether the table has been dropped since this handle was taken.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    pub(crate) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
    }
}
