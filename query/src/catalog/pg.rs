//! Brikk's amendments to the Postgres catalog that `datafusion-pg-catalog`
//! builds (`pg_catalog.*` and its functions), so that psql's meta-commands
//! and drivers' reflection queries describe Brikk truthfully:
//!
//! - `pg_class.relnamespace` of Brikk's system tables (`brikk_streams`, …)
//!   is `pg_catalog`'s, as for Postgres' own catalogs: psql's `\dt` lists
//!   the user's streams and tables, `\dtS` the system tables too.
//! - `pg_class.reloptions`: a stream's options (`partitions=8`,
//!   `key=task_id`, `retention=7 days`) and a table's changelog
//!   (`changelog=board$changes`); psql's `\d+` prints them as "Options".
//! - `pg_attribute.atttypid` of a `json`/`jsonb`/`uuid` column is that type
//!   (the crate sees only the Arrow text underneath); `atthasdef` is set for
//!   a column with a default, and `pg_attrdef` holds the defaults, whose
//!   text `pg_get_expr` returns. (psql's `\d` still shows no default: the
//!   crate's parser replaces its correlated subquery with NULL.)
//!   `attidentity` is `a` or `d` for an identity column (psql's `\d`
//!   prints "generated always/by default as identity").
//! - Every table's primary key is a constraint `{table}_pkey` backed by a
//!   unique index of the same name (`pg_constraint`, `pg_index`, a
//!   `pg_class` row; `pg_get_indexdef`, `pg_get_constraintdef`), and
//!   `conkey`, `indkey` and the like are arrays: see [`keys`].
//! - `pg_views` lists Brikk's views with their definitions, and
//!   `pg_get_viewdef(view)` (an oid from `pg_class`, or a name) gives a
//!   view's query (psql's `\d+`, SQLAlchemy's `get_view_definition`).
//! - `pg_settings` lists the server's read-only parameters
//!   (`max_index_keys`, `server_version_num`, …; context `internal`), which
//!   pgjdbc's metadata reads, and the reading session's own (`TimeZone`,
//!   `statement_timeout`, …; context `user`) with their `source`,
//!   `boot_val` (which the crate spells `bool_val`) and `reset_val`: psql's
//!   `\dconfig` lists those changed.
//! - `pg_database` lists `brikk` only: the one database a client can
//!   connect to; `pg_roles` lists the one role, `brikk` (psql's `\du`).
//! - `pg_table_size`, `pg_relation_size`, `pg_total_relation_size`,
//!   `pg_database_size` and `pg_size_pretty` measure Brikk's files (psql's
//!   `\dt+` and `\l+`): see [`sizes`]; `pg_size_bytes` reads a size back.
//! - `regclass_of(oid, name)`, what `'name'::regclass` becomes (see
//!   [`crate::sql::pg_compat`]): `42P01` for a name no relation has.
//! - `pg_is_in_recovery()` is false; `pg_postmaster_start_time()` and
//!   `pg_conf_load_time()` are when the database was opened.
//! - `pg_cancel_backend`, `pg_terminate_backend` and the view
//!   `pg_stat_activity`: see [`crate::activity`].
//! - `pg_get_userbyid`, `current_user` and `session_user` name `brikk`, the
//!   only role; `pg_typeof(x)` names the type of `x` as Postgres does;
//!   `gen_random_uuid()` is DataFusion's `uuid()` (as text);
//!   `pg_get_serial_sequence` is NULL (identity columns' sequences are not
//!   catalog objects); `col_description`, `obj_description` and
//!   `shobj_description` are NULL (nor comments); the `pg_*_is_visible`
//!   functions (collations, functions, types, operators, …) are true;
//!   `pg_tablespace_location` is ''; `pg_get_function_result` and
//!   `pg_get_function_arguments` are NULL (psql's `\df` asks; Brikk has no
//!   user-defined functions).
//!
//! The amended tables are the crate's tables with a column added or rows
//! filtered when scanned; everything else is the crate's as is.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use brikk_storage::{ColumnDef, ColumnType, Identity, Store, ViewDef, WeakStore};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use crate::db::DATABASE;

mod keys;
mod sizes;

/// Replaces the `pg_catalog` schema of `ctx`'s catalog [`DATABASE`] (set up
/// by `datafusion_pg_catalog::setup_pg_catalog`) with the amended one, and
/// registers the functions above.
pub fn amend(ctx: &SessionContext, store: &Store, backends: &Arc<crate::activity::Backends>) -> Result<()> {
    let catalog = ctx.catalog(DATABASE).ok_or_else(|| DataFusionError::Internal(format!("no catalog {DATABASE}")))?;
    let inner =
        catalog.schema("pg_catalog").ok_or_else(|| DataFusionError::Internal("pg_catalog is not set up".into()))?;
    let oids = RelationOids::default();
    let pg_catalog =
        PgCatalog { inner, store: store.downgrade(), oids: oids.clone(), backends: Arc::downgrade(backends) };
    catalog.register_schema("pg_catalog", Arc::new(pg_catalog))?;
    ctx.register_udf(ScalarUDF::new_from_impl(crate::activity::Signal::new(false, backends)));
    // It may wait for the session to end (its `timeout`).
    let terminate = Arc::new(crate::activity::Signal::new(true, backends));
    ctx.register_udf(datafusion::logical_expr::async_udf::AsyncScalarUDF::new(terminate).into_scalar_udf());
    let handles = Handles { store: store.downgrade(), oids: oids.clone() };
    ctx.register_udf(ScalarUDF::new_from_impl(ViewDefinition {
        signature: Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Stable),
        handles: handles.clone(),
    }));
    for definition in [keys::Definition::Index, keys::Definition::Constraint] {
        ctx.register_udf(ScalarUDF::new_from_impl(keys::KeyDefinition::new(definition, handles.clone())));
    }
    // The crate's `pg_relation_size` and `pg_total_relation_size` are 0
    // for everything.
    for of in sizes::SizeOf::ALL {
        ctx.register_udf(ScalarUDF::new_from_impl(sizes::Size::new(of, handles.clone())));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(sizes::SizePretty::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(sizes::SizeBytes::new()));
    // A Brikk server is never a standby; it started when the database was
    // opened.
    ctx.register_udf(constant_udf("pg_is_in_recovery", 0, ScalarValue::Boolean(Some(false))));
    let started = ScalarValue::TimestampMicrosecond(Some(brikk_storage::now_micros()), Some(crate::types::UTC.into()));
    ctx.register_udf(constant_udf("pg_postmaster_start_time", 0, started.clone()));
    ctx.register_udf(constant_udf("pg_conf_load_time", 0, started));
    ctx.register_udf(ScalarUDF::new_from_impl(RegclassOf { signature: Signature::any(2, Volatility::Immutable) }));
    ctx.register_udf(constant_udf("pg_get_userbyid", 1, ScalarValue::from(crate::USER)));
    // The crate's `current_user` (which it renames `session_user`) says
    // `postgres`.
    ctx.register_udf(constant_udf("session_user", 0, ScalarValue::from(crate::USER)));
    // The crate's returns '' for every expression; Brikk's `adbin` is the
    // expression's SQL text already.
    ctx.register_udf(crate::udf::TextOf::udf("pg_get_expr", true, |a| {
        Ok(datafusion::arrow::compute::cast(a, &DataType::Utf8)?)
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(TypeOf { signature: Signature::any(1, Volatility::Immutable) }));
    ctx.register_udf(datafusion::functions::string::uuid().as_ref().clone().with_aliases(["gen_random_uuid"]));
    ctx.register_udf(constant_udf("pg_get_serial_sequence", 2, ScalarValue::Utf8(None)));
    // Every object is in a schema on the search path (`public`,
    // `pg_catalog`), so every object is visible.
    for what in [
        "collation",
        "function",
        "type",
        "operator",
        "opclass",
        "opfamily",
        "conversion",
        "statistics_obj",
        "ts_config",
        "ts_dict",
        "ts_parser",
        "ts_template",
    ] {
        ctx.register_udf(constant_udf(&format!("pg_{what}_is_visible"), 1, ScalarValue::Boolean(Some(true))));
    }
    // The one tablespace is the data directory; Postgres names the default
    // ones' location ''.
    ctx.register_udf(constant_udf("pg_tablespace_location", 1, ScalarValue::from("")));
    // Brikk has no user-defined functions for `\df` to describe.
    ctx.register_udf(constant_udf("pg_get_function_result", 1, ScalarValue::Utf8(None)));
    ctx.register_udf(constant_udf("pg_get_function_arguments", 1, ScalarValue::Utf8(None)));
    ctx.register_udf(constant_udf("col_description", 2, ScalarValue::Utf8(None)));
    ctx.register_udf(constant_udf("obj_description", 2, ScalarValue::Utf8(None)));
    ctx.register_udf(constant_udf("shobj_description", 2, ScalarValue::Utf8(None)));
    Ok(())
}

/// A function of `arity` arguments of any type that returns the same
/// value for every row.
fn constant_udf(name: &str, arity: usize, value: ScalarValue) -> ScalarUDF {
    let signature = match arity {
        0 => Signature::nullary(Volatility::Immutable),
        n => Signature::any(n, Volatility::Immutable),
    };
    ScalarUDF::new_from_impl(Constant { name: name.to_string(), signature, value })
}

/// `regclass_of(oid, name)`: `oid`, the relation `name` was looked up as
/// (the rewrite of `'name'::regclass`, see [`crate::sql::pg_compat`]);
/// `42P01` where the lookup found none.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegclassOf {
    signature: Signature,
}

impl ScalarUDFImpl for RegclassOf {
    fn name(&self) -> &str {
        "regclass_of"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = datafusion::arrow::compute::cast(&arrays[1], &DataType::Utf8)?;
        let names = names.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        if let Some(i) = (0..names.len()).find(|&i| arrays[0].is_null(i) && names.is_valid(i)) {
            let kind = crate::error::ObjectKind::Relation;
            let missing = crate::Error::NotFound { kind, name: identifier_text(names.value(i)) };
            return Err(DataFusionError::External(Box::new(missing)));
        }
        crate::udf::columnar(arrays[0].clone(), scalar)
    }
}

/// A possibly qualified name as Postgres reads it and names it in errors:
/// each part lower-cased unless it is double-quoted (`Tasks` is `tasks`,
/// `"Tasks"` is `Tasks`).
fn identifier_text(name: &str) -> String {
    let part = |p: &str| match p.trim().strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => p.trim().to_lowercase(),
    };
    name.split('.').map(part).collect::<Vec<_>>().join(".")
}

/// `pg_typeof(x)`: the Postgres name of `x`'s type (`integer`, `text`,
/// `timestamp with time zone`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypeOf {
    signature: Signature,
}

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let field = &args.arg_fields[0];
        let name = match field.metadata().get(crate::types::PG_TYPE_METADATA) {
            Some(json) => json.as_str(),
            None => crate::types::pg_name_of(field.data_type()),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::from(name)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: String,
    signature: Signature,
    value: ScalarValue,
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

#[derive(Debug)]
struct PgCatalog {
    inner: Arc<dyn SchemaProvider>,
    store: WeakStore,
    oids: RelationOids,
    /// For `pg_stat_activity`, which the crate does not have.
    backends: std::sync::Weak<crate::activity::Backends>,
}

/// The view of the open sessions ([`crate::activity`]).
const PG_STAT_ACTIVITY: &str = "pg_stat_activity";

/// The relation oids the crate gave out, as `pg_class` last listed them:
/// oid → name. Clients take an oid from a catalog table (`pg_class`, or
/// `pg_constraint` and `pg_index`, which are amended from it) before they
/// pass it to a function of it (`pg_get_viewdef(c.oid)`,
/// `pg_get_constraintdef(con.oid)`), so it is known by then.
type RelationOids = Arc<std::sync::RwLock<HashMap<i32, String>>>;

/// The oid of the `pg_catalog` namespace.
const PG_CATALOG_OID: i32 = 11;

/// What a catalog function reads: the store and the oids `pg_class` gave
/// out. They are not part of the function's identity (its name and
/// signature), so every `Handles` equals every other.
#[derive(Debug, Clone)]
struct Handles {
    store: WeakStore,
    oids: RelationOids,
}

impl Handles {
    /// The relation each value of `arg` names: a name as is, an oid as
    /// `pg_class` listed it (a primary key's index oid too, see [`keys`]);
    /// NULL for an oid it never gave out.
    fn relation_names(&self, arg: &dyn Array) -> Result<Vec<Option<String>>> {
        Ok(match arg.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let text = datafusion::arrow::compute::cast(arg, &DataType::Utf8)?;
                let text = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
                text.iter().map(|n| n.map(str::to_string)).collect()
            }
            _ => {
                let ids = datafusion::arrow::compute::cast(arg, &DataType::Int64)?;
                let ids = ids.as_any().downcast_ref::<Int64Array>().expect("cast to Int64");
                let oids = self.oids.read().unwrap_or_else(|e| e.into_inner());
                let name = |oid: i32| match oids.get(&oid) {
                    Some(name) => Some(name.clone()),
                    None => Some(keys::key_name(oids.get(&oid.checked_sub(keys::INDEX_OID_OFFSET)?)?)),
                };
                ids.iter().map(|id| name(i32::try_from(id?).ok()?)).collect()
            }
        })
    }

    /// Whether `name` is a relation the catalog lists: a stream, table,
    /// view or system table, a primary key's index, or one of those
    /// `pg_class` has given an oid (Postgres' catalogs).
    fn is_relation(&self, store: &Store, name: &str) -> bool {
        store.stream(name).is_some()
            || store.table(name).is_some()
            || store.view(name).is_some()
            || crate::catalog::system::NAMES.contains(&name)
            || keys::table_of_key(store, name).is_some()
            || self.oids.read().unwrap_or_else(|e| e.into_inner()).values().any(|n| n == name)
    }
}

impl PartialEq for Handles {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Handles {}

impl std::hash::Hash for Handles {
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.push(PG_STAT_ACTIVITY.to_string());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case(PG_STAT_ACTIVITY) {
            let backends = self.backends.clone();
            let read = move || match backends.upgrade() {
                Some(backends) => backends.snapshot(),
                None => Err(DataFusionError::Execution("the database is closed".into())),
            };
            return Ok(Some(Arc::new(super::system::Snapshot::new(crate::activity::schema(), read))));
        }
        let Some(table) = self.inner.table(name).await? else { return Ok(None) };
        let amendment = match name.to_ascii_lowercase().as_str() {
            "pg_class" => Amendment::RelOptions(self.store.clone()),
            "pg_views" => Amendment::Views(self.store.clone()),
            "pg_attribute" => match self.inner.table("pg_class").await? {
                Some(pg_class) => Amendment::JsonTypes(self.store.clone(), pg_class),
                None => return Ok(Some(table)),
            },
            "pg_attrdef" => match self.inner.table("pg_class").await? {
                Some(pg_class) => Amendment::Defaults(self.store.clone(), pg_class),
                None => return Ok(Some(table)),
            },
            "pg_constraint" => match self.inner.table("pg_class").await? {
                Some(pg_class) => Amendment::Constraints(self.store.clone(), pg_class),
                None => return Ok(Some(table)),
            },
            "pg_index" => match self.inner.table("pg_class").await? {
                Some(pg_class) => Amendment::Indexes(self.store.clone(), pg_class),
                None => return Ok(Some(table)),
            },
            "pg_database" => Amendment::OnlyBrikk,
            "pg_namespace" => Amendment::AclLists(&[("nspacl", DataType::Utf8)]),
            "pg_type" => Amendment::AclLists(&[("typacl", DataType::Utf8)]),
            "pg_roles" => Amendment::OneRole,
            "pg_settings" => Amendment::ServerSettings,
            _ => return Ok(Some(table)),
        };
        Ok(Some(Arc::new(Amended::new(table, amendment, self.oids.clone()))))
    }

    fn table_exist(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(PG_STAT_ACTIVITY) || self.inner.table_exist(name)
    }
}

enum Amendment {
    /// Adds `reloptions text[]` to `pg_class` and the rows of the primary
    /// keys' indexes, and notes its oids.
    RelOptions(WeakStore),
    /// `pg_views` lists Brikk's views.
    Views(WeakStore),
    /// Types `json`/`jsonb`/`uuid` columns in `pg_attribute` and marks those
    /// with a default (`atthasdef`), and adds the columns of the primary
    /// keys' indexes; relation names from the crate's `pg_class`.
    JsonTypes(WeakStore, Arc<dyn TableProvider>),
    /// Fills `pg_attrdef` with the columns' defaults (`adbin` is the
    /// default's SQL text, which `pg_get_expr` returns).
    Defaults(WeakStore, Arc<dyn TableProvider>),
    /// Types `conkey`/`confkey` `int2[]` and adds the tables' primary keys
    /// to `pg_constraint`.
    Constraints(WeakStore, Arc<dyn TableProvider>),
    /// Types `indkey` `int2[]` and adds the primary keys' indexes to
    /// `pg_index`.
    Indexes(WeakStore, Arc<dyn TableProvider>),
    /// Types the access-privilege columns (`nspacl`, `typacl`) `text[]`,
    /// as psql's `\dn+` and `\dT+` read them.
    AclLists(&'static [(&'static str, DataType)]),
    /// Keeps the rows of `pg_database` named [`DATABASE`].
    OnlyBrikk,
    /// `pg_roles` is the one role, `brikk` (oid 10, a superuser that can
    /// log in), which psql's `\du` lists.
    OneRole,
    /// `pg_settings` lists [`SERVER_SETTINGS`] and the session's
    /// parameters ([`SessionSettings`]).
    ServerSettings,
}

impl std::fmt::Debug for Amendment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Amendment::RelOptions(..) => "RelOptions",
            Amendment::Views(_) => "Views",
            Amendment::JsonTypes(..) => "JsonTypes",
            Amendment::Defaults(..) => "Defaults",
            Amendment::Constraints(..) => "Constraints",
            Amendment::Indexes(..) => "Indexes",
            Amendment::OnlyBrikk => "OnlyBrikk",
            Amendment::AclLists(_) => "AclLists",
            Amendment::OneRole => "OneRole",
            Amendment::ServerSettings => "ServerSettings",
        })
    }
}

/// One of the crate's tables, amended as it is scanned.
#[derive(Debug)]
struct Amended {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    amendment: Amendment,
    /// Noted from every scan of `pg_class`, also one made to amend another
    /// table.
    oids: RelationOids,
}

impl Amended {
    fn new(inner: Arc<dyn TableProvider>, amendment: Amendment, oids: RelationOids) -> Amended {
        let schema = match &amendment {
            Amendment::RelOptions(..) => {
                let mut fields: Vec<Field> = inner.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(Field::new("reloptions", DataType::new_list(DataType::Utf8, true), true));
                Arc::new(Schema::new(fields))
            }
            Amendment::Constraints(..) => keys::with_lists(&inner.schema(), keys::CONSTRAINT_LISTS),
            Amendment::Indexes(..) => keys::with_lists(&inner.schema(), keys::INDEX_LISTS),
            Amendment::AclLists(lists) => keys::with_lists(&inner.schema(), lists),
            // The crate spells `boot_val` `bool_val`.
            Amendment::ServerSettings => {
                let schema = inner.schema();
                let fields = schema.fields().iter().map(|f| match f.name().as_str() {
                    "bool_val" => f.as_ref().clone().with_name("boot_val"),
                    _ => f.as_ref().clone(),
                });
                Arc::new(Schema::new(fields.collect::<Vec<_>>()))
            }
            Amendment::JsonTypes(..)
            | Amendment::Defaults(..)
            | Amendment::Views(_)
            | Amendment::OnlyBrikk
            | Amendment::OneRole => inner.schema(),
        };
        Amended { inner, schema, amendment, oids }
    }

    /// Notes the relation oids a scan of the crate's `pg_class` gave out.
    fn note_oids(&self, oids: impl Iterator<Item = (i32, String)>) {
        self.oids.write().unwrap_or_else(|e| e.into_inner()).extend(oids);
    }

    /// `relations`: oid → name of every relation, for `JsonTypes`.
    fn apply(&self, batch: RecordBatch, relations: &HashMap<i32, String>) -> Result<RecordBatch> {
        match &self.amendment {
            Amendment::JsonTypes(store, _) => {
                let Some(store) = store.upgrade() else { return Ok(batch) };
                let rel = int_column(&batch, "attrelid")?;
                let names = string_column(&batch, "attname")?;
                let types = int_column(&batch, "atttypid")?;
                let typmods = int_column(&batch, "atttypmod")?;
                let defs: Vec<Option<ColumnDef>> = (0..batch.num_rows())
                    .map(|i| relations.get(&rel.value(i)).and_then(|r| column_def(&store, r, names.value(i))))
                    .collect();
                let typed: Int32Array = defs
                    .iter()
                    .zip(types.iter())
                    .map(|(c, oid)| {
                        c.as_ref()
                            .and_then(|c| match c.ty {
                                ColumnType::Json => Some(JSON_OID),
                                ColumnType::Jsonb => Some(JSONB_OID),
                                ColumnType::Uuid => Some(UUID_OID),
                                _ => None,
                            })
                            .or(oid)
                    })
                    .collect();
                // numeric(p, s) is typmod ((p << 16) | s) + 4, as Postgres
                // stores it and format_type reads it.
                let typmod: Int32Array = defs
                    .iter()
                    .zip(typmods.iter())
                    .map(|(c, typmod)| match c.as_ref().map(|c| c.ty) {
                        Some(ColumnType::Numeric { precision, scale }) => {
                            Some((((precision as i32) << 16) | scale as i32) + 4)
                        }
                        _ => typmod,
                    })
                    .collect();
                let has_default: BooleanArray =
                    defs.iter().map(|c| Some(c.as_ref().is_some_and(|c| c.default.is_some()))).collect();
                let identity: StringArray = defs
                    .iter()
                    .map(|c| {
                        Some(match c.as_ref().and_then(|c| c.identity) {
                            Some(Identity::Always) => "a",
                            Some(Identity::ByDefault) => "d",
                            None => "",
                        })
                    })
                    .collect();
                let mut columns = batch.columns().to_vec();
                let at = batch.schema().index_of("atttypid")?;
                columns[at] = Arc::new(typed);
                let at = batch.schema().index_of("atttypmod")?;
                columns[at] = Arc::new(typmod);
                if let Ok(at) = batch.schema().index_of("atthasdef") {
                    columns[at] = Arc::new(has_default);
                }
                if let Ok(at) = batch.schema().index_of("attidentity") {
                    if batch.schema().field(at).data_type() == &DataType::Utf8 {
                        columns[at] = Arc::new(identity);
                    }
                }
                Ok(RecordBatch::try_new(batch.schema(), columns)?)
            }
            Amendment::RelOptions(store) => {
                let names = string_column(&batch, "relname")?;
                let ids = int_column(&batch, "oid")?;
                self.note_oids((0..names.len()).map(|i| (ids.value(i), names.value(i).to_string())));
                let store = store.upgrade();
                let mut options = ListBuilder::new(StringBuilder::new());
                for i in 0..names.len() {
                    match store.as_ref().and_then(|s| relation_options(s, names.value(i))) {
                        Some(opts) => {
                            opts.iter().for_each(|o| options.values().append_value(o));
                            options.append(true);
                        }
                        None => options.append(false),
                    }
                }
                let mut columns = batch.columns().to_vec();
                columns.push(Arc::new(options.finish()) as ArrayRef);
                // Brikk's system tables sit with Postgres' own catalogs:
                // psql's `\dt` leaves them out, `\dtS` lists them.
                let spaces = int_column(&batch, "relnamespace")?;
                let spaces: Int32Array = (0..names.len())
                    .map(|i| match crate::catalog::system::NAMES.contains(&names.value(i)) {
                        true => Some(PG_CATALOG_OID),
                        false => spaces.is_valid(i).then(|| spaces.value(i)),
                    })
                    .collect();
                // Catalogs have no replica identity (psql's `\d+` says
                // "???" for anything else there).
                if let Ok(at) = batch.schema().index_of("relreplident") {
                    let identities = string_column(&batch, "relreplident")?;
                    let identities: StringArray = (0..names.len())
                        .map(|i| match spaces.value(i) == PG_CATALOG_OID {
                            true => Some("n"),
                            false => identities.is_valid(i).then(|| identities.value(i)),
                        })
                        .collect();
                    columns[at] = Arc::new(identities);
                }
                columns[batch.schema().index_of("relnamespace")?] = Arc::new(spaces);
                let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
                match store {
                    Some(store) => keys::with_index_rows(&store, batch),
                    None => Ok(batch),
                }
            }
            Amendment::Constraints(..) | Amendment::Indexes(..) | Amendment::AclLists(_) => {
                keys::parse_lists(&batch, &self.schema)
            }
            // Generated whole in `scan`.
            Amendment::Defaults(..) | Amendment::Views(_) | Amendment::OneRole | Amendment::ServerSettings => Ok(batch),
            Amendment::OnlyBrikk => {
                let names = string_column(&batch, "datname")?;
                let keep: BooleanArray = names.iter().map(|n| Some(n == Some(DATABASE))).collect();
                Ok(filter_record_batch(&batch, &keep)?)
            }
        }
    }
}

/// `pg_roles`' one row (schema `schema`): `brikk`, oid 10, a superuser
/// that can log in.
fn role_batch(schema: SchemaRef) -> Result<RecordBatch> {
    let yes = || ScalarValue::Boolean(Some(true));
    let row = vec![
        ("rolname", ScalarValue::from(crate::USER)),
        ("oid", ScalarValue::Int32(Some(10))),
        ("rolsuper", yes()),
        ("rolinherit", yes()),
        ("rolcreaterole", yes()),
        ("rolcreatedb", yes()),
        ("rolcanlogin", yes()),
        ("rolreplication", ScalarValue::Boolean(Some(false))),
        ("rolbypassrls", ScalarValue::Boolean(Some(false))),
        ("rolconnlimit", ScalarValue::Int32(Some(-1))),
    ];
    batch_of(&schema, &[row])
}

/// The server's read-only parameters (name, value, type): the same for
/// every session.
const SERVER_SETTINGS: [(&str, &str, &str); 9] = [
    ("block_size", "8192", "integer"),
    ("integer_datetimes", "on", "bool"),
    ("max_function_args", "100", "integer"),
    ("max_identifier_length", "63", "integer"),
    ("max_index_keys", "32", "integer"),
    ("server_encoding", "UTF8", "string"),
    ("server_version", crate::SERVER_VERSION, "string"),
    ("server_version_num", crate::SERVER_VERSION_NUM, "integer"),
    ("standard_conforming_strings", "on", "bool"),
];

/// `pg_settings`' rows (schema `schema`): [`SERVER_SETTINGS`], then the
/// session's parameters (`session`, when the statement runs in a session)
/// that are not among them, by name.
fn settings_batch(schema: &SchemaRef, session: Option<&SessionSettings>) -> Result<RecordBatch> {
    let mut rows: Vec<_> = SERVER_SETTINGS
        .iter()
        .map(|(name, value, vartype)| {
            vec![
                ("name", ScalarValue::from(*name)),
                ("setting", ScalarValue::from(*value)),
                ("boot_val", ScalarValue::from(*value)),
                ("reset_val", ScalarValue::from(*value)),
                ("vartype", ScalarValue::from(*vartype)),
                ("context", ScalarValue::from("internal")),
                ("source", ScalarValue::from("default")),
                ("pending_restart", ScalarValue::Boolean(Some(false))),
            ]
        })
        .collect();
    let settings = session.map_or(&[][..], |s| s.0.as_slice());
    for s in settings.iter().filter(|s| !SERVER_SETTINGS.iter().any(|(name, ..)| *name == s.name)) {
        let vartype = match s.name.as_str() {
            "extra_float_digits" | "statement_timeout" => "integer",
            _ => "string",
        };
        rows.push(vec![
            ("name", ScalarValue::from(s.name.as_str())),
            ("setting", ScalarValue::from(s.setting.as_str())),
            ("boot_val", ScalarValue::Utf8(s.boot_val.clone())),
            ("reset_val", ScalarValue::Utf8(s.reset_val.clone())),
            ("vartype", ScalarValue::from(vartype)),
            ("context", ScalarValue::from("user")),
            ("source", ScalarValue::from(s.source)),
            ("pending_restart", ScalarValue::Boolean(Some(false))),
        ]);
    }
    rows.sort_by_key(|r| r[0].1.to_string());
    batch_of(schema, &rows)
}

/// A session's own parameters, for its scans of `pg_settings` (a
/// DataFusion config extension the session sets on the state a statement
/// over `pg_settings` runs in).
#[derive(Debug)]
pub struct SessionSettings(pub Vec<crate::session::vars::Setting>);

/// A batch of `schema` with one row per entry of `rows`, which gives
/// values by column name (cast to the column's type). A column a row does
/// not name is NULL, or, if it cannot be NULL, its type's zero (`0`, `''`,
/// `false`).
fn batch_of(schema: &SchemaRef, rows: &[Vec<(&str, ScalarValue)>]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let values = rows.iter().map(|row| match row.iter().find(|(name, _)| name == f.name()) {
                Some((_, v)) => v.cast_to(f.data_type()),
                None if f.is_nullable() => ScalarValue::try_from(f.data_type()),
                None => ScalarValue::new_default(f.data_type()),
            });
            match rows.is_empty() {
                true => Ok(datafusion::arrow::array::new_empty_array(f.data_type())),
                false => ScalarValue::iter_to_array(values.collect::<Result<Vec<_>>>()?),
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

/// Column `name` of a catalog batch, as an array of type `T`.
fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| {
        DataFusionError::Internal(format!("pg_catalog table without a column {name} of {}", std::any::type_name::<T>()))
    })
}

fn int_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int32Array> {
    column(batch, name)
}

/// Postgres' type OIDs of `json` and `jsonb`.
const JSON_OID: i32 = 114;
const JSONB_OID: i32 = 3802;
const UUID_OID: i32 = 2950;

/// The user columns of Brikk relation `relation`, and the number of
/// system columns before them, if it is one.
fn relation_columns(store: &Store, relation: &str) -> Option<(Vec<ColumnDef>, usize)> {
    match store.table(relation) {
        Some(t) => Some((t.def.columns.clone(), crate::catalog::TABLE_SYSTEM_COLUMNS.len())),
        None => Some((store.stream(relation)?.def.columns.clone(), crate::catalog::SYSTEM_COLUMNS.len())),
    }
}

/// Column `column` of Brikk relation `relation`, if it is one.
fn column_def(store: &Store, relation: &str, column: &str) -> Option<ColumnDef> {
    relation_columns(store, relation)?.0.into_iter().find(|c| c.name == column)
}

/// `pg_attrdef`'s rows (schema `schema`): one per column with a default of
/// the relations in `relations` (oid → name).
fn defaults_batch(store: &Store, relations: &HashMap<i32, String>, schema: SchemaRef) -> Result<RecordBatch> {
    let (mut oids, mut rels, mut nums, mut texts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sorted: Vec<_> = relations.iter().collect();
    sorted.sort();
    for (oid, name) in sorted {
        let Some((columns, system)) = relation_columns(store, name) else { continue };
        for (i, c) in columns.iter().enumerate() {
            if let Some(text) = &c.default {
                let attnum = (system + i + 1) as i16;
                // An oid of its own, derived from the column's place.
                oids.push(oid.wrapping_mul(1000).wrapping_add(i32::from(attnum)));
                rels.push(*oid);
                nums.push(attnum);
                texts.push(text.clone());
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(oids)),
        Arc::new(Int32Array::from(rels)),
        Arc::new(datafusion::arrow::array::Int16Array::from(nums)),
        Arc::new(StringArray::from(texts)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `pg_views`' rows (schema `schema`): one per view, by name.
fn views_batch(store: &Store, schema: SchemaRef) -> Result<RecordBatch> {
    let catalog = store.catalog();
    let views: Vec<_> = catalog.views().collect();
    let n = views.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["public"; n])),
        Arc::new(StringArray::from_iter_values(views.iter().map(|v| v.name.as_str()))),
        Arc::new(StringArray::from(vec![crate::USER; n])),
        Arc::new(StringArray::from_iter_values(views.iter().map(|v| view_definition(v)))),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A view's definition as `pg_views` and `pg_get_viewdef` give it: its
/// query, ended by `;`.
fn view_definition(view: &ViewDef) -> String {
    format!(" {};", view.query)
}

/// `pg_get_viewdef(view [, pretty])`: the definition of the view with oid
/// `view` (as `pg_class` lists it) or named `view`; NULL for anything else.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ViewDefinition {
    signature: Signature,
    handles: Handles,
}

impl ScalarUDFImpl for ViewDefinition {
    fn name(&self) -> &str {
        "pg_get_viewdef"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let names = self.handles.relation_names(&args.args[0].to_array(args.number_rows)?)?;
        let store = self.handles.store.upgrade();
        let definitions: StringArray =
            names.iter().map(|n| Some(view_definition(&*store.as_ref()?.view(n.as_deref()?)?))).collect();
        crate::udf::columnar(Arc::new(definitions), scalar)
    }
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    column(batch, name)
}

/// What `reloptions` says of a Brikk relation; `None` for others.
fn relation_options(store: &Store, name: &str) -> Option<Vec<String>> {
    if let Some(t) = store.table(name) {
        return Some(vec![format!("changelog={}", t.changelog.def.name)]);
    }
    let s = store.stream(name)?;
    let mut opts = vec![format!("partitions={}", s.def.partitions)];
    if let Some(k) = s.def.key_column {
        opts.push(format!("key={}", s.def.columns[k].name));
    }
    if let Some(r) = s.def.retention_micros {
        opts.push(format!("retention={}", crate::sql::format_duration(r)));
    }
    Some(opts)
}

#[async_trait]
impl TableProvider for Amended {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Catalog tables are small snapshots: read the crate's whole, amend
        // it, and scan that.
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        let (mut relations, mut namespaces) = (HashMap::new(), HashMap::new());
        if let Amendment::JsonTypes(_, pg_class)
        | Amendment::Defaults(_, pg_class)
        | Amendment::Constraints(_, pg_class)
        | Amendment::Indexes(_, pg_class) = &self.amendment
        {
            let plan = pg_class.scan(state, None, &[], None).await?;
            for b in collect(plan, state.task_ctx()).await? {
                let (oids, names) = (int_column(&b, "oid")?, string_column(&b, "relname")?);
                let spaces = int_column(&b, "relnamespace")?;
                relations.extend((0..b.num_rows()).map(|i| (oids.value(i), names.value(i).to_string())));
                namespaces.extend((0..b.num_rows()).map(|i| (oids.value(i), spaces.value(i))));
            }
            self.note_oids(relations.iter().map(|(oid, name)| (*oid, name.clone())));
        }
        let batches = match &self.amendment {
            Amendment::Defaults(store, _) => match store.upgrade() {
                Some(store) => vec![defaults_batch(&store, &relations, self.schema.clone())?],
                None => batches,
            },
            Amendment::Views(store) => match store.upgrade() {
                Some(store) => vec![views_batch(&store, self.schema.clone())?],
                None => batches,
            },
            Amendment::OneRole => vec![role_batch(self.schema.clone())?],
            Amendment::ServerSettings => {
                vec![settings_batch(&self.schema, state.config().get_extension::<SessionSettings>().as_deref())?]
            }
            Amendment::Constraints(store, _) | Amendment::Indexes(store, _) => {
                let mut batches = batches.into_iter().map(|b| self.apply(b, &relations)).collect::<Result<Vec<_>>>()?;
                if let Some(store) = store.upgrade() {
                    batches.push(match &self.amendment {
                        Amendment::Constraints(..) => {
                            keys::constraint_rows(&store, &relations, &namespaces, &self.schema)?
                        }
                        _ => keys::index_rows(&store, &relations, &self.schema)?,
                    });
                }
                batches
            }
            Amendment::JsonTypes(store, _) => {
                let mut amended = Vec::with_capacity(batches.len() + 1);
                let mut indexes = Vec::new();
                for b in batches {
                    let b = self.apply(b, &relations)?;
                    if let Some(store) = store.upgrade() {
                        indexes.push(keys::index_attributes(&store, &relations, &b)?);
                    }
                    amended.push(b);
                }
                amended.extend(indexes);
                amended
            }
            _ => batches.into_iter().map(|b| self.apply(b, &relations)).collect::<Result<Vec<_>>>()?,
        };
        MemTable::try_new(self.schema.clone(), vec![batches])?.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::identifier_text;

    #[test]
    fn names_in_errors_read_as_postgres_reads_them() {
        assert_eq!(identifier_text("Tasks"), "tasks");
        assert_eq!(identifier_text("\"Tasks\""), "Tasks");
        assert_eq!(identifier_text("Public.\"My \"\"Board\"\"\""), "public.My \"Board\"");
    }
}
