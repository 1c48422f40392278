//! Views: named queries over streams, tables and other views.
//!
//! `CREATE [OR REPLACE] VIEW name [(columns)] AS query` stores the query's
//! text in the catalog ([`brikk_storage::ViewDef`]); every statement that
//! reads the view plans it again ([`plan`]), so the view sees its relations
//! as they are then, live records and rows included. A view cannot refer to
//! itself, directly or through other views (`42P17`, checked at CREATE);
//! dropping a relation a view reads leaves the view, which fails when read
//! (`42P01`), where Postgres would refuse the drop.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use brikk_storage::{now_micros, Store, ViewDef};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{TableType, ViewTable};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast;

use crate::db::Brikk;
use crate::error::{Error, ObjectKind, Result};
use crate::sql::parser::normalize;
use crate::sql::Statement;

/// The definition `CREATE VIEW` asks for in a session of time zone `zone`,
/// checked: no cycle through other views, a query that plans, no more
/// column names than columns.
pub async fn definition(db: &Brikk, cv: &ast::CreateView, zone: &str) -> Result<ViewDef> {
    if cv.materialized || cv.temporary {
        return Err(Error::Unsupported("materialized and temporary views".into()));
    }
    if cv.columns.iter().any(|c| c.data_type.is_some() || c.options.is_some()) {
        return Err(Error::Unsupported("types or options in a view's column list".into()));
    }
    let name = cv.name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
    if name.contains('$') {
        return Err(Error::ReservedName(format!("view names cannot contain \"$\": \"{name}\"")));
    }
    let store = db.store();
    if references(store, &cv.query, &name)? {
        return Err(Error::InvalidObjectDefinition(format!(
            "infinite recursion detected in rules for relation \"{name}\""
        )));
    }
    let def = ViewDef {
        name,
        query: cv.query.to_string(),
        columns: cv.columns.iter().map(|c| normalize(&c.name)).collect(),
        time_zone: (!crate::types::is_utc(zone)).then(|| zone.to_string()),
        created_at_micros: now_micros(),
    };
    plan(db, &def).await?;
    Ok(def)
}

/// Whether `query` reads the relation `name`, directly or through the
/// views it reads.
fn references(store: &Store, query: &ast::Query, name: &str) -> Result<bool> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut pending = relations(&ast::Statement::Query(Box::new(query.clone())));
    while let Some(r) = pending.pop() {
        if r == name {
            return Ok(true);
        }
        if !seen.insert(r.clone()) {
            continue;
        }
        if let Some(view) = store.view(&r) {
            pending.extend(view_relations(&view)?);
        }
    }
    Ok(false)
}

/// The views that read any of `names`, directly or through other views,
/// in the order they were found (each after a relation it reads), with
/// that relation; `names` themselves are not counted.
pub fn dependents(store: &Store, names: &[String]) -> Result<Vec<(String, String)>> {
    let catalog = store.catalog();
    let mut reads: Vec<(String, Vec<String>)> = Vec::new();
    for view in catalog.views() {
        reads.push((view.name.clone(), view_relations(view)?));
    }
    let mut found: Vec<(String, String)> = Vec::new();
    let mut next = 0;
    let mut frontier: Vec<String> = names.to_vec();
    while next < frontier.len() {
        let r = frontier[next].clone();
        next += 1;
        for (view, relations) in &reads {
            let known = names.contains(view) || found.iter().any(|(v, _)| v == view);
            if relations.contains(&r) && !known {
                found.push((view.clone(), r.clone()));
                frontier.push(view.clone());
            }
        }
    }
    Ok(found)
}

/// Refuses to drop `names` (of kind `what`: `table`, `stream`, `view`)
/// while views read them (`2BP01`, naming each dependent as Postgres
/// does), or with `cascade` drops those views first, readers before what
/// they read; the names of the views dropped.
pub async fn drop_dependents(db: &Brikk, what: &str, names: &[String], cascade: bool) -> Result<Vec<String>> {
    let store = db.store();
    let dependents = dependents(store, names)?;
    if dependents.is_empty() {
        return Ok(Vec::new());
    }
    if !cascade {
        let kind = |r: &String| if names.contains(r) { what } else { "view" };
        let name = &dependents[0].1;
        return Err(Error::DependentObjects {
            message: format!("cannot drop {what} {name} because other objects depend on it"),
            detail: dependents
                .iter()
                .map(|(v, r)| format!("view {v} depends on {} {r}", kind(r)))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    let mut dropped = Vec::with_capacity(dependents.len());
    for (view, _) in dependents.iter().rev() {
        store.drop_view(view, true).await?;
        dropped.push(view.clone());
    }
    Ok(dropped)
}

/// The relations the query of `view` names.
fn view_relations(view: &ViewDef) -> Result<Vec<String>> {
    let statements = datafusion::sql::sqlparser::parser::Parser::parse_sql(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
        &view.query,
    )?;
    Ok(statements.iter().flat_map(relations).collect())
}

/// The relations `stmt` names (last part, normalized).
fn relations(stmt: &ast::Statement) -> Vec<String> {
    let mut out = Vec::new();
    let _ = ast::visit_relations(stmt, |name| {
        if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
            out.push(normalize(last));
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// The view `def` as a table provider: its query planned now.
pub async fn plan(db: &Brikk, def: &ViewDef) -> Result<Arc<dyn TableProvider>> {
    let mut statements = crate::sql::parse(&def.query, &db.shared().compat)?;
    let (Some(Statement::Sql(stmt)), true) = (statements.pop(), statements.is_empty()) else {
        return Err(Error::Internal(format!("the query of view \"{}\" is not one query", def.name)));
    };
    let zone = def.time_zone.as_deref().unwrap_or(crate::types::UTC);
    let mut plan = Box::pin(db.plan_query(*stmt, zone)).await?;
    if !def.columns.is_empty() {
        let fields = plan.schema().fields().len();
        if def.columns.len() > fields {
            return Err(Error::Syntax(format!("CREATE VIEW specifies more column names than columns ({fields})")));
        }
        let exprs: Vec<_> = plan
            .schema()
            .columns()
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let e = Expr::Column(c.clone());
                match def.columns.get(i) {
                    Some(n) => e.alias(n),
                    None => e.alias(c.name),
                }
            })
            .collect();
        plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
    }
    let zoned = plan.schema().fields().iter().any(|f| matches!(f.data_type(), DataType::Timestamp(_, Some(_))));
    if !zoned {
        return Ok(Arc::new(ViewTable::new(plan, Some(def.query.clone()))));
    }
    // Its `timestamptz` columns in UTC, and not inlined into the reading
    // query, so the reading session shows them in its own zone as it does
    // a table's (`crate::zone`), not in the zone the view was created in.
    let exprs: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::from((qualifier, field)));
            match field.data_type() {
                DataType::Timestamp(unit, Some(_)) => Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(column),
                    DataType::Timestamp(*unit, Some(crate::types::UTC.into())),
                ))
                .alias(field.name()),
                _ => column,
            }
        })
        .collect();
    let plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
    Ok(Arc::new(ZonedView(ViewTable::new(plan, Some(def.query.clone())))))
}

/// A view with `timestamptz` columns: read through its own scan rather than
/// inlined, so its columns are retagged in the reader's zone like a table's.
#[derive(Debug)]
struct ZonedView(ViewTable);

#[async_trait]
impl TableProvider for ZonedView {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.0.get_table_definition()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}

/// [`plan`], or for a view that no longer plans (a relation it reads was
/// dropped) a relation without columns that fails with that error when
/// read: listing the catalog (psql's `\d`) still works.
pub async fn provider(db: &Brikk, def: &ViewDef) -> Arc<dyn TableProvider> {
    match plan(db, def).await {
        Ok(p) => p,
        Err(e) => Arc::new(BrokenView { error: Arc::new(e) }),
    }
}

#[derive(Debug)]
struct BrokenView {
    error: Arc<Error>,
}

#[async_trait]
impl TableProvider for BrokenView {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::empty())
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Err(datafusion::error::DataFusionError::External(Box::new(self.error.as_ref().clone())))
    }
}

/// Drops the views `names`; a name that is a table or stream is `42809`.
pub async fn drop(db: &Brikk, names: &[String], if_exists: bool) -> Result<Vec<String>> {
    let store = db.store();
    for name in names {
        if store.view(name).is_none() {
            if store.table(name).is_some() || store.stream(name).is_some() {
                return Err(Error::WrongObjectType(format!("\"{name}\" is not a view")));
            }
            if !if_exists {
                return Err(Error::NotFound { kind: ObjectKind::Relation, name: name.clone() });
            }
        }
    }
    let mut skipped = Vec::new();
    for name in names {
        if !store.drop_view(name, if_exists).await? {
            skipped.push(name.clone());
        }
    }
    Ok(skipped)
}
