//! The embedded database handle.

use std::path::Path;
use std::sync::Arc;

use brikk_storage::{Store, StoreOptions};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::execution::SessionStateBuilder;
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::TryStreamExt;

use crate::catalog::{time_windows, BrikkSchema};
use crate::error::{Error, Result};
use crate::session::subscribe::LiveSubscriptions;
use crate::session::{Output, Session};

/// `version()`, as drivers and tools read it: Postgres-shaped, naming Brikk.
fn version_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
    let text = format!("PostgreSQL {} on {}", crate::SERVER_VERSION, std::env::consts::ARCH);
    create_udf(
        "version",
        vec![],
        datafusion::arrow::datatypes::DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(datafusion::scalar::ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// `to_regtype(name)`: the OID of a built-in type by name (also its
/// `pg_catalog.` or alias spelling), NULL for a type that does not exist —
/// drivers probe for optional types (psycopg for `hstore`) this way.
fn to_regtype_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
    fn oid(name: &str) -> Option<i64> {
        let name = name.trim().trim_start_matches("pg_catalog.").to_ascii_lowercase();
        Some(match name.as_str() {
            "bool" | "boolean" => 16,
            "bytea" => 17,
            "int8" | "bigint" => 20,
            "int2" | "smallint" => 21,
            "int4" | "integer" | "int" => 23,
            "text" => 25,
            "oid" => 26,
            "json" => 114,
            "float4" | "real" => 700,
            "float8" | "double precision" => 701,
            "varchar" | "character varying" => 1043,
            "date" => 1082,
            "timestamp" | "timestamp without time zone" => 1114,
            "timestamptz" | "timestamp with time zone" => 1184,
            "numeric" => 1700,
            "uuid" => 2950,
            "jsonb" => 3802,
            _ => return None,
        })
    }
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = arrays[0]
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| datafusion::error::DataFusionError::Internal("to_regtype expects text".into()))?;
            let oids: Int64Array =
                (0..names.len()).map(|i| (!names.is_null(i)).then(|| oid(names.value(i))).flatten()).collect();
            Ok(ColumnarValue::Array(Arc::new(oids)))
        }),
    )
}

/// The name of Brikk's one database (DataFusion catalog).
pub const DATABASE: &str = "brikk";

/// The name of Brikk's one role: every client connects as `brikk` until
/// roles arrive.
pub const USER: &str = "brikk";

/// An open Brikk database. Cheap to clone; all clones share the storage,
/// the committer and the DataFusion context.
///
/// ```no_run
/// # async fn demo() -> brikk_query::Result<()> {
/// let db = brikk_query::Brikk::open("./brikk-data")?;
/// db.execute("CREATE STREAM IF NOT EXISTS events (kind TEXT, n BIGINT)").await?;
/// db.execute("INSERT INTO events VALUES ('start', 1)").await?;
/// let batches = db.execute("SELECT _offset, * FROM events").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Brikk {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// First, so it stops (and its runners let go of the store) before the
    /// rest goes.
    pub(crate) continuous: crate::continuous::Runtime,
    pub(crate) store: Store,
    pub(crate) archive: crate::catalog::schema::ArchiveSlot,
    pub(crate) ctx: SessionContext,
    /// A snapshot of `ctx`'s state for paths that evaluate compiled
    /// expressions without planning a query (table DML, key lookups):
    /// cloning a `SessionState` per statement costs more than the lookup.
    pub(crate) state: Arc<datafusion::execution::context::SessionState>,
    pub(crate) compat: PostgresCompatibilityParser,
    pub(crate) hub: crate::session::listen::Hub,
    /// Live `COPY (SUBSCRIBE …)`s, for `brikk_subscriptions`.
    pub(crate) subscriptions: Arc<LiveSubscriptions>,
    /// The open sessions, for `pg_stat_activity`.
    pub(crate) backends: Arc<crate::activity::Backends>,
}

impl Brikk {
    /// Opens (creating if needed) the database in directory `path`.
    ///
    /// The same directory can be served by `brikk serve` — but not by two
    /// processes at once: a second open fails while another holds it.
    pub fn open(path: impl AsRef<Path>) -> Result<Brikk> {
        Brikk::open_with(path, StoreOptions::default())
    }

    /// [`Brikk::open`] with the storage engine's `options`.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Brikk> {
        Brikk::with_store(Store::open_with(path, options)?)
    }

    /// Wraps an already open store.
    pub fn with_store(store: Store) -> Result<Brikk> {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE, "public")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            // now() and current_timestamp are `timestamptz` (in UTC, the
            // session's TimeZone), as in Postgres.
            .set_str("datafusion.execution.time_zone", "+00:00");
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            // Scans in the session's zone before types are coerced to them.
            .with_analyzer_rules(
                std::iter::once(Arc::new(crate::zone::SessionZone) as Arc<dyn AnalyzerRule + Send + Sync>)
                    .chain(Analyzer::new().rules)
                    .collect(),
            )
            .with_analyzer_rule(Arc::new(crate::checked::CheckedArithmetic))
            // Postgres's date/time spellings in literals, once casts are explicit.
            .with_analyzer_rule(Arc::new(crate::datetime::PostgresDateTimes))
            .with_physical_optimizer_rule(Arc::new(crate::shared_subplans::ShareRepeatedAggregates))
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        crate::json::register(&mut ctx)?;
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let archive = crate::catalog::schema::ArchiveSlot::default();
        let subscriptions = Arc::new(LiveSubscriptions::default());
        let schema = Arc::new(BrikkSchema::new(&store, archive.clone(), subscriptions.clone()));
        catalog.register_schema("public", schema.clone())?;
        ctx.register_catalog(DATABASE, catalog);
        datafusion_pg_catalog::setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| Error::from_datafusion(*e))?;
        let backends = Arc::new(crate::activity::Backends::default());
        crate::catalog::pg::amend(&ctx, &store, &backends)?;
        // The table function a series in FROM runs on, under a name the
        // rewrite of set-returning functions leaves alone.
        let series = ctx.table_function("generate_series").map_err(Error::from_datafusion)?;
        ctx.register_udtf(crate::sql::table_functions::SERIES_FUNCTION, series.function().clone());
        ctx.register_udf(version_udf());
        ctx.register_udf(crate::sleep::pg_sleep_udf());
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(crate::format::Format::default()));
        for nullable in [false, true] {
            let quote = crate::format::QuoteLiteral::new(nullable);
            ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(quote));
        }
        ctx.register_udf(to_regtype_udf());
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::datetime::to_char::ToChar::default(),
        ));
        ctx.register_udtf(
            crate::tables::history::CHANGES_FUNCTION,
            Arc::new(crate::tables::history::ChangesFunction { store: store.downgrade() }),
        );
        ctx.register_udtf(
            crate::market::ORDER_BOOK_FUNCTION,
            Arc::new(crate::market::OrderBookFunction { store: store.downgrade() }),
        );
        for (name, hop) in [(time_windows::TUMBLE_FUNCTION, false), (time_windows::HOP_FUNCTION, true)] {
            ctx.register_udtf(name, Arc::new(time_windows::WindowFunction { schema: schema.clone(), hop }));
        }
        ctx.register_udtf(
            crate::tables::history::AS_OF_FUNCTION,
            Arc::new(crate::tables::history::AsOfFunction { store: store.downgrade() }),
        );
        let state = Arc::new(ctx.state());
        let brikk = Brikk {
            shared: Arc::new(Shared {
                continuous: Default::default(),
                store,
                archive,
                ctx,
                state,
                compat: PostgresCompatibilityParser::new(),
                hub: Default::default(),
                subscriptions,
                backends,
            }),
        };
        schema.plan_views_in(Arc::downgrade(&brikk.shared));
        brikk.shared.continuous.start(Arc::downgrade(&brikk.shared), &brikk.shared.store)?;
        Ok(brikk)
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Brikk {
        Brikk { shared }
    }

    /// A new session: its own transaction and parameters.
    pub fn session(&self) -> Session {
        Session::new(self.clone())
    }

    /// Runs `sql` (one or more statements) in a fresh session and returns
    /// the rows of the last statement that returns rows. Errors stop the
    /// run; with several statements nothing they appended is committed.
    pub async fn execute(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let mut session = self.session();
        let mut last = Vec::new();
        for result in session.execute(sql).await {
            if let Output::Rows(stream) = result? {
                last = stream.try_collect().await?;
            }
        }
        Ok(last)
    }

    /// Installs what scans read archived files with (`brikk-connectors`
    /// installs it, with the storage's record reader, when the server
    /// starts). Until then a scan of archived offsets fails with
    /// `archive unavailable`.
    pub fn set_archive_scan(&self, scan: Arc<dyn crate::catalog::ArchiveScan>) {
        *self.shared.archive.write().expect("archive slot") = Some(scan);
    }

    /// The storage engine underneath.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The DataFusion context sessions plan with.
    pub fn context(&self) -> &SessionContext {
        &self.shared.ctx
    }

    /// Finishes queued commits and closes the storage; later writes fail.
    pub fn close(&self) {
        self.shared.continuous.shutdown();
        self.shared.store.close();
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}
