//! The `public` schema: every stream and table of the storage catalog,
//! plus the `brikk_*` system tables.

use std::sync::Arc;

use async_trait::async_trait;
use brikk_storage::{Store, WeakStore};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::Result;

use crate::catalog::archive::ArchiveScan;
use crate::catalog::keyed_table::KeyedTable;
use crate::catalog::stream_table::StreamTable;
use crate::catalog::system;
use crate::session::subscribe::LiveSubscriptions;

/// A schema provider that reflects the storage catalog live: a stream
/// created by any session is visible to the next statement of every other.
///
/// It holds the store weakly: DataFusion's catalog list and pg_catalog refer
/// to each other, so whatever the catalog holds lives as long as the
/// context, and the database must close when [`crate::Brikk`] is dropped.
#[derive(Debug)]
pub struct BrikkSchema {
    store: WeakStore,
    archive: ArchiveSlot,
    subscriptions: Arc<LiveSubscriptions>,
    /// The database views are planned in ([`BrikkSchema::plan_views_in`]).
    planner: std::sync::OnceLock<std::sync::Weak<crate::db::Shared>>,
}

/// Where the installed [`ArchiveScan`] is kept, shared by the schema and
/// [`crate::Brikk`].
pub type ArchiveSlot = Arc<std::sync::RwLock<Option<Arc<dyn ArchiveScan>>>>;

impl BrikkSchema {
    pub fn new(store: &Store, archive: ArchiveSlot, subscriptions: Arc<LiveSubscriptions>) -> BrikkSchema {
        BrikkSchema { store: store.downgrade(), archive, subscriptions, planner: Default::default() }
    }

    /// Views are planned in `db` (set once, when the database opens).
    pub(crate) fn plan_views_in(&self, db: std::sync::Weak<crate::db::Shared>) {
        let _ = self.planner.set(db);
    }

    fn store(&self) -> Option<Store> {
        self.store.upgrade()
    }

    /// The relation called `name`: a table, a stream or a system table.
    pub fn relation(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(store) = self.store() else { return Ok(None) };
        if let Some(table) = store.table(name) {
            return Ok(Some(Arc::new(KeyedTable::new(store, table))));
        }
        if let Some(stream) = store.stream(name) {
            let archive = self.archive.read().expect("archive slot").clone();
            return Ok(Some(Arc::new(StreamTable::new(store, stream, archive))));
        }
        system::table(&store, &self.subscriptions, name)
    }
}

#[async_trait]
impl SchemaProvider for BrikkSchema {
    fn table_names(&self) -> Vec<String> {
        let Some(store) = self.store() else { return Vec::new() };
        let catalog = store.catalog();
        // Changelog streams are reached through their table (changes(t)),
        // so they stay out of listings such as psql's \dt.
        let mut names: Vec<String> =
            catalog.streams().filter(|s| s.def.changelog_of.is_none()).map(|s| s.def.name.clone()).collect();
        names.extend(catalog.tables().map(|t| t.def.name.clone()));
        names.extend(catalog.views().map(|v| v.name.clone()));
        names.extend(system::NAMES.iter().map(|s| s.to_string()));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let view = self.store().and_then(|s| s.view(name));
        let db = self.planner.get().and_then(std::sync::Weak::upgrade);
        match (view, db) {
            (Some(view), Some(db)) => {
                let db = crate::Brikk::from_shared(db);
                Ok(Some(crate::catalog::views::provider(&db, &view).await))
            }
            _ => self.relation(name),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.store().is_some_and(|s| s.stream(name).is_some() || s.table(name).is_some() || s.view(name).is_some())
            || system::NAMES.contains(&name)
    }
}
