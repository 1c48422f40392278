//! Primary keys in the Postgres catalog.
//!
//! Every Brikk table has a primary key. The catalog shows it as Postgres
//! shows a table's key: a constraint `{table}_pkey` (`pg_constraint`,
//! `contype = 'p'`) backed by a unique btree index of the same name
//! (`pg_index`, and a `pg_class` row of kind `i`; the table's
//! `relhasindex` is true). So psql's `\d board` lists
//! `"board_pkey" PRIMARY KEY, btree (k)`, `\di` lists the index, and
//! drivers' reflection finds the key (SQLAlchemy's `get_pk_constraint` and
//! `Table(…, autoload_with=engine)`, pandas' `read_sql_table`).
//! `pg_get_indexdef(index [, column, pretty])` and
//! `pg_get_constraintdef(constraint [, pretty])` describe them.
//!
//! The number vectors of `pg_constraint` (`conkey`, `confkey`) and
//! `pg_index` (`indkey`, `indclass`, `indcollation`, `indoption`) are
//! arrays (the crate keeps them as text), so `unnest` and
//! `generate_subscripts` of them work as in Postgres.
//!
//! The crate hands out relation oids counting up from 16384; the index and
//! the constraint of the table with oid `t` are `t +` [`INDEX_OID_OFFSET`]
//! and `t +` [`CONSTRAINT_OID_OFFSET`], far above any the crate gives.

use std::collections::HashMap;
use std::sync::Arc;

use brikk_storage::Store;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int16Array, Int32Array, Int64Array, ListArray, ListBuilder, RecordBatch,
    StringArray, StringBuilder, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Int16Type, Int64Type, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::scalar::ScalarValue;

use super::{batch_of, column, int_column, string_column, Handles, RelationOids};
use crate::sql::parser::display_ident;

/// Added to a table's oid: the oid of its primary key's index.
pub const INDEX_OID_OFFSET: i32 = 1 << 29;
/// Added to a table's oid: the oid of its primary key constraint.
pub const CONSTRAINT_OID_OFFSET: i32 = 1 << 30;
/// Postgres' oid of the btree access method (`pg_am`).
const BTREE_OID: i32 = 403;

/// The primary key of a Brikk table, as the catalog shows it.
struct PrimaryKey {
    /// The table's oid in `pg_class`.
    table_oid: i32,
    table: String,
    /// The key's columns in key order: (attnum, name).
    columns: Vec<(i16, String)>,
}

/// `{table}_pkey`: the name of table `table`'s primary key constraint and
/// of its index.
pub(super) fn key_name(table: &str) -> String {
    format!("{table}_pkey")
}

/// The table whose primary key's index is called `index`, if it is one.
pub(super) fn table_of_key(store: &Store, index: &str) -> Option<String> {
    let table = index.strip_suffix("_pkey")?;
    store.table(table).map(|_| table.to_string())
}

impl PrimaryKey {
    /// The key of the Brikk table `name` with oid `table_oid`, if it is one.
    fn of(store: &Store, table_oid: i32, name: &str) -> Option<PrimaryKey> {
        let table = store.table(name)?;
        let system = crate::catalog::TABLE_SYSTEM_COLUMNS.len();
        let columns = table
            .def
            .primary_key
            .iter()
            .map(|&i| ((system + i + 1) as i16, table.def.columns[i].name.clone()))
            .collect();
        Some(PrimaryKey { table_oid, table: name.to_string(), columns })
    }

    /// The key of the table whose index or constraint (`offset`) has oid
    /// `oid`, by the oids `pg_class` last listed.
    fn by_oid(store: &Store, oids: &RelationOids, oid: i64, offset: i32) -> Option<PrimaryKey> {
        let table_oid = i32::try_from(oid).ok()?.checked_sub(offset).filter(|t| *t > 0)?;
        let name = oids.read().unwrap_or_else(|e| e.into_inner()).get(&table_oid)?.clone();
        PrimaryKey::of(store, table_oid, &name)
    }

    /// The name of the constraint and of its index.
    fn name(&self) -> String {
        key_name(&self.table)
    }

    fn index_oid(&self) -> i32 {
        self.table_oid + INDEX_OID_OFFSET
    }

    fn constraint_oid(&self) -> i32 {
        self.table_oid + CONSTRAINT_OID_OFFSET
    }

    fn attnums(&self) -> ScalarValue {
        let list = ListArray::from_iter_primitive::<Int16Type, _, _>([Some(self.columns.iter().map(|c| Some(c.0)))]);
        ScalarValue::List(Arc::new(list))
    }

    /// `k, seq`: the key's columns as an index definition lists them.
    fn column_list(&self) -> String {
        self.columns.iter().map(|(_, name)| display_ident(name)).collect::<Vec<_>>().join(", ")
    }

    /// `pg_get_indexdef` of the index.
    fn index_definition(&self) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON public.{} USING btree ({})",
            display_ident(&self.name()),
            display_ident(&self.table),
            self.column_list()
        )
    }
}

/// The primary keys of the Brikk tables among `relations` (oid → name),
/// by oid.
fn primary_keys(store: &Store, relations: &HashMap<i32, String>) -> Vec<PrimaryKey> {
    let mut keys: Vec<PrimaryKey> =
        relations.iter().filter_map(|(oid, name)| PrimaryKey::of(store, *oid, name)).collect();
    keys.sort_by_key(|k| k.table_oid);
    keys
}

/// The array columns of `pg_constraint`, with their element types.
pub(super) const CONSTRAINT_LISTS: &[(&str, DataType)] = &[("conkey", DataType::Int16), ("confkey", DataType::Int16)];
/// The array columns of `pg_index`: `int2vector`s and `oidvector`s.
pub(super) const INDEX_LISTS: &[(&str, DataType)] = &[
    ("indkey", DataType::Int16),
    ("indcollation", DataType::Int32),
    ("indclass", DataType::Int32),
    ("indoption", DataType::Int16),
];

/// The schema of a crate's catalog table with the columns `lists` typed
/// as arrays of their element types.
pub(super) fn with_lists(schema: &Schema, lists: &[(&str, DataType)]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match lists.iter().find(|(name, _)| name == f.name()) {
            Some((_, element)) => Field::new(f.name(), DataType::new_list(element.clone(), true), true),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// One of the crate's batches in `schema` (see [`with_lists`]): each text
/// column that `schema` types as an array parsed into the numbers it holds
/// (`[1, 2]`, or `1 2` as an `int2vector` prints), or into its texts
/// (`{a,b}`, as Postgres prints a `text[]` or an `aclitem[]`).
pub(super) fn parse_lists(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| match (column.data_type(), field.data_type()) {
            (DataType::Utf8, DataType::List(element)) if element.data_type() == &DataType::Utf8 => {
                let text = column.as_any().downcast_ref::<StringArray>().expect("a Utf8 column");
                let mut lists = ListBuilder::new(StringBuilder::new());
                for t in text.iter() {
                    match t {
                        Some(t) => {
                            let inner = t.trim().trim_start_matches('{').trim_end_matches('}');
                            inner.split(',').filter(|e| !e.is_empty()).for_each(|e| lists.values().append_value(e));
                            lists.append(true);
                        }
                        None => lists.append(false),
                    }
                }
                Ok(Arc::new(lists.finish()) as ArrayRef)
            }
            (DataType::Utf8, DataType::List(element)) => {
                let text = column.as_any().downcast_ref::<StringArray>().expect("a Utf8 column");
                let lists = text.iter().map(|t| {
                    t.map(|t| {
                        t.split(|c: char| !c.is_ascii_digit() && c != '-')
                            .filter_map(|n| n.parse().ok())
                            .map(Some)
                            .collect::<Vec<Option<i64>>>()
                    })
                });
                let lists = ListArray::from_iter_primitive::<Int64Type, _, _>(lists);
                Ok(cast(&lists, &DataType::List(element.clone()))?)
            }
            _ => Ok(column.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `pg_constraint`'s rows for the primary keys of the tables among
/// `relations` (oid → name; `namespaces`: oid → namespace oid).
pub(super) fn constraint_rows(
    store: &Store,
    relations: &HashMap<i32, String>,
    namespaces: &HashMap<i32, i32>,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let rows = primary_keys(store, relations)
        .into_iter()
        .map(|key| {
            let namespace = namespaces.get(&key.table_oid).copied().unwrap_or_default();
            vec![
                ("oid", ScalarValue::Int32(Some(key.constraint_oid()))),
                ("conname", ScalarValue::from(key.name())),
                ("connamespace", ScalarValue::Int32(Some(namespace))),
                ("contype", ScalarValue::from("p")),
                ("convalidated", ScalarValue::Boolean(Some(true))),
                ("conrelid", ScalarValue::Int32(Some(key.table_oid))),
                ("conindid", ScalarValue::Int32(Some(key.index_oid()))),
                ("confupdtype", ScalarValue::from(" ")),
                ("confdeltype", ScalarValue::from(" ")),
                ("confmatchtype", ScalarValue::from(" ")),
                ("conislocal", ScalarValue::Boolean(Some(true))),
                ("connoinherit", ScalarValue::Boolean(Some(true))),
                ("conkey", key.attnums()),
            ]
        })
        .collect::<Vec<_>>();
    batch_of(schema, &rows)
}

/// `pg_index`'s rows for the primary keys of the tables among `relations`.
pub(super) fn index_rows(store: &Store, relations: &HashMap<i32, String>, schema: &SchemaRef) -> Result<RecordBatch> {
    let rows = primary_keys(store, relations)
        .into_iter()
        .map(|key| {
            let n = key.columns.len() as i16;
            // No collations, default operator classes and options.
            let zeros = ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>([Some(
                key.columns.iter().map(|_| Some(0)),
            )])));
            let yes = || ScalarValue::Boolean(Some(true));
            vec![
                ("indexrelid", ScalarValue::Int32(Some(key.index_oid()))),
                ("indrelid", ScalarValue::Int32(Some(key.table_oid))),
                ("indnatts", ScalarValue::Int16(Some(n))),
                ("indnkeyatts", ScalarValue::Int16(Some(n))),
                ("indisunique", yes()),
                ("indisprimary", yes()),
                ("indimmediate", yes()),
                ("indisvalid", yes()),
                ("indisready", yes()),
                ("indislive", yes()),
                ("indkey", key.attnums()),
                ("indcollation", zeros.clone()),
                ("indclass", zeros.clone()),
                ("indoption", zeros),
            ]
        })
        .collect::<Vec<_>>();
    batch_of(schema, &rows)
}

/// `pg_class` (a batch of the crate's rows, `reloptions` added) with
/// `relhasindex` set for Brikk tables and a row of kind `i` for each of
/// their primary keys' indexes: a copy of its table's row with the index's
/// oid, name, access method and column count.
pub(super) fn with_index_rows(store: &Store, batch: RecordBatch) -> Result<RecordBatch> {
    let (oids, names) = (int_column(&batch, "oid")?, string_column(&batch, "relname")?);
    let mut keys = Vec::new();
    let mut rows = Vec::new();
    for i in 0..batch.num_rows() {
        if let Some(key) = PrimaryKey::of(store, oids.value(i), names.value(i)) {
            keys.push(key);
            rows.push(i as u32);
        }
    }
    if keys.is_empty() {
        return Ok(batch);
    }
    let schema = batch.schema();
    let has_index: BooleanArray =
        (0..batch.num_rows()).map(|i| Some(rows.binary_search(&(i as u32)).is_ok())).collect();
    let mut tables = batch.columns().to_vec();
    tables[schema.index_of("relhasindex")?] = Arc::new(has_index);
    let tables = RecordBatch::try_new(schema.clone(), tables)?;

    let n = keys.len();
    let indexes = copy_rows(&batch, rows, |field| -> Option<ArrayRef> {
        Some(match field.name().as_str() {
            "oid" => Arc::new(Int32Array::from_iter_values(keys.iter().map(|k| k.index_oid()))),
            "relname" => Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.name()))),
            "relam" => Arc::new(Int32Array::from(vec![BTREE_OID; n])),
            "relkind" => Arc::new(StringArray::from(vec!["i"; n])),
            "relnatts" => Arc::new(Int16Array::from_iter_values(keys.iter().map(|k| k.columns.len() as i16))),
            "reltype" | "relfilenode" => Arc::new(Int32Array::from(vec![0; n])),
            "relhasindex" => Arc::new(BooleanArray::from(vec![false; n])),
            "reloptions" => datafusion::arrow::array::new_null_array(field.data_type(), n),
            _ => return None,
        })
    })?;
    Ok(concat_batches(&schema, [&tables, &indexes])?)
}

/// The rows `rows` of `batch`, with the columns `replace` gives (by field;
/// cast to the column's type, as the crate's may be of another integer
/// width) instead of the copied ones.
fn copy_rows(batch: &RecordBatch, rows: Vec<u32>, replace: impl Fn(&Field) -> Option<ArrayRef>) -> Result<RecordBatch> {
    let picked = UInt32Array::from(rows);
    let schema = batch.schema();
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| match replace(field) {
            Some(array) => Ok(cast(&array, field.data_type())?),
            None => Ok(take(column, &picked, None)?),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `pg_attribute`'s rows for the columns of the primary keys' indexes:
/// copies of the key columns' rows of the tables in `batch` (one of
/// `pg_attribute`'s, amended), numbered from 1 in key order under the
/// index's oid, as psql's `\d board_pkey` lists them.
pub(super) fn index_attributes(
    store: &Store,
    relations: &HashMap<i32, String>,
    batch: &RecordBatch,
) -> Result<RecordBatch> {
    let (relids, attnums) = (int_column(batch, "attrelid")?, column::<Int16Array>(batch, "attnum")?);
    let mut keys: HashMap<i32, Option<PrimaryKey>> = HashMap::new();
    let (mut rows, mut index_oids, mut positions) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..batch.num_rows() {
        let table = relids.value(i);
        let key = keys
            .entry(table)
            .or_insert_with(|| relations.get(&table).and_then(|name| PrimaryKey::of(store, table, name)));
        let Some(key) = key else { continue };
        if let Some(at) = key.columns.iter().position(|(attnum, _)| *attnum == attnums.value(i)) {
            rows.push(i as u32);
            index_oids.push(key.index_oid());
            positions.push(at as i16 + 1);
        }
    }
    copy_rows(batch, rows, |field| -> Option<ArrayRef> {
        Some(match field.name().as_str() {
            "attrelid" => Arc::new(Int32Array::from(index_oids.clone())),
            "attnum" => Arc::new(Int16Array::from(positions.clone())),
            "atthasdef" => Arc::new(BooleanArray::from(vec![false; positions.len()])),
            _ => return None,
        })
    })
}

/// Which definition a [`KeyDefinition`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Definition {
    /// `pg_get_indexdef(index [, column, pretty])`: `CREATE UNIQUE INDEX
    /// board_pkey ON public.board USING btree (k)`, or the name of key
    /// column `column` (from 1; 0 is the whole definition).
    Index,
    /// `pg_get_constraintdef(constraint [, pretty])`: `PRIMARY KEY (k)`.
    Constraint,
}

/// `pg_get_indexdef` / `pg_get_constraintdef` of primary keys; NULL for
/// any other oid.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct KeyDefinition {
    pub definition: Definition,
    pub signature: Signature,
    handles: Handles,
}

impl KeyDefinition {
    pub fn new(definition: Definition, handles: Handles) -> KeyDefinition {
        let arities = match definition {
            Definition::Index => [1, 3],
            Definition::Constraint => [1, 2],
        };
        let signature = Signature::one_of(arities.map(TypeSignature::Any).to_vec(), Volatility::Stable);
        KeyDefinition { definition, signature, handles }
    }

    fn describe(&self, store: &Store, oid: i64, column: Option<i64>) -> Option<String> {
        match self.definition {
            Definition::Constraint => {
                let key = PrimaryKey::by_oid(store, &self.handles.oids, oid, CONSTRAINT_OID_OFFSET)?;
                Some(format!("PRIMARY KEY ({})", key.column_list()))
            }
            Definition::Index => {
                let key = PrimaryKey::by_oid(store, &self.handles.oids, oid, INDEX_OID_OFFSET)?;
                match column.unwrap_or(0) {
                    0 => Some(key.index_definition()),
                    n => Some(display_ident(&key.columns.get(usize::try_from(n - 1).ok()?)?.1)),
                }
            }
        }
    }
}

impl ScalarUDFImpl for KeyDefinition {
    fn name(&self) -> &str {
        match self.definition {
            Definition::Index => "pg_get_indexdef",
            Definition::Constraint => "pg_get_constraintdef",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let int64 = |i: usize| -> Result<Option<ArrayRef>> {
            match args.args.get(i) {
                Some(a) => Ok(Some(cast(&a.to_array(args.number_rows)?, &DataType::Int64)?)),
                None => Ok(None),
            }
        };
        let oids = int64(0)?.expect("one argument at least");
        let oids = oids.as_any().downcast_ref::<Int64Array>().expect("cast to Int64");
        // The column argument of pg_get_indexdef(index, column, pretty).
        let columns = match self.definition {
            Definition::Index => int64(1)?,
            Definition::Constraint => None,
        };
        let columns = columns.as_ref().map(|c| c.as_any().downcast_ref::<Int64Array>().expect("cast to Int64"));
        let store = self.handles.store.upgrade();
        let texts: StringArray = (0..oids.len())
            .map(|i| {
                let column = match columns {
                    Some(c) if c.is_null(i) => return None,
                    Some(c) => Some(c.value(i)),
                    None => None,
                };
                match oids.is_null(i) {
                    true => None,
                    false => self.describe(store.as_ref()?, oids.value(i), column),
                }
            })
            .collect();
        crate::udf::columnar(Arc::new(texts), scalar)
    }
}
