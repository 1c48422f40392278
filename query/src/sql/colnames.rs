//! Result column names as Postgres gives them.
//!
//! DataFusion names an unaliased select item by its expression
//! (`count(*)`, `Int64(1)`, `t.v + Int64(1)`); Postgres names it by a few
//! rules: a column by its name, a function call by the function (`count`,
//! `now`), a cast by what it casts (or the type, for a constant), `CASE` as
//! `case`, anything else `?column?`. Clients read columns by these names
//! (node-postgres rows are objects keyed by them, `row["count"]` in
//! psycopg and asyncpg), so the names sent in RowDescription follow
//! Postgres. Plans keep DataFusion's names, which must be unique, while
//! Postgres names may repeat (`SELECT 1, 2` has two `?column?`): the names
//! are applied to the result's Arrow schema only.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast::{
    self, DataType, Expr, Function, ObjectNamePart, Query, SelectItem, SetExpr, Statement, TimezoneInfo,
};
use futures::StreamExt;

/// The name Postgres gives a column it cannot name otherwise.
const UNNAMED: &str = "?column?";

/// Postgres names for the columns of a query's result, where they differ
/// from DataFusion's.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnNames(Vec<Item>);

#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// DataFusion's name is Postgres's too (a column, an alias).
    Keep,
    Rename(String),
    /// `*` or `t.*`: as many kept names as it expands to.
    Star,
}

impl ColumnNames {
    /// The names of `stmt`'s result columns, or `None` if every name stays
    /// or the select items cannot be matched to the columns (more than one
    /// `*`).
    pub fn of(stmt: &Statement) -> Option<ColumnNames> {
        let Statement::Query(query) = stmt else { return None };
        let select = first_select(query)?;
        let items: Vec<Item> = select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(e) => pg_name(e).map_or(Item::Keep, |(name, _)| Item::Rename(name)),
                i if is_star(i) => Item::Star,
                _ => Item::Keep,
            })
            .collect();
        let stars = items.iter().filter(|i| **i == Item::Star).count();
        let renames = items.iter().any(|i| matches!(i, Item::Rename(_)));
        (renames && stars <= 1).then_some(ColumnNames(items))
    }

    /// Whether `stmt`'s select list has two or more items, so that
    /// DataFusion might refuse it for naming two of them alike.
    pub fn may_repeat(stmt: &Statement) -> bool {
        let Statement::Query(query) = stmt else { return false };
        first_select(query).is_some_and(|s| s.projection.len() > 1)
    }

    /// Aliases every item of `stmt`'s first select list distinctly and
    /// returns the Postgres names of its columns; for lists whose items
    /// DataFusion names alike, which Postgres allows (`SELECT 1, 1`,
    /// `SELECT a, a FROM t`, `SELECT current_user, session_user`).
    /// `None`, with `stmt` unchanged, if the list has more than one `*` or
    /// an item of another kind.
    pub fn distinct(stmt: &mut Statement) -> Option<ColumnNames> {
        let Statement::Query(query) = stmt else { return None };
        let select = first_select_mut(query)?;
        let plain = |i: &SelectItem| matches!(i, SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. });
        let stars = select.projection.iter().filter(|i| is_star(i)).count();
        if stars > 1 || !select.projection.iter().all(|i| plain(i) || is_star(i)) {
            return None;
        }
        let mut names = Vec::with_capacity(select.projection.len());
        for (i, item) in select.projection.iter_mut().enumerate() {
            if is_star(item) {
                names.push(Item::Star);
                continue;
            }
            // Moved out, not cloned: the caller's statement is a copy already.
            let (expr, name) = match std::mem::replace(item, SelectItem::UnnamedExpr(Expr::Identifier("".into()))) {
                SelectItem::UnnamedExpr(e) => {
                    let name = item_name(&e);
                    (e, name)
                }
                SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value),
                _ => unreachable!("checked: only plain items and stars"),
            };
            let alias = ast::Ident::with_quote('"', format!("?column{i}?"));
            *item = SelectItem::ExprWithAlias { expr, alias };
            names.push(Item::Rename(name));
        }
        Some(ColumnNames(names))
    }

    /// Whether `e` is DataFusion refusing a select list for naming two
    /// items alike (see [`ColumnNames::distinct`]).
    pub fn is_repeated_name(e: &crate::error::Error) -> bool {
        e.to_string().contains("Projections require unique expression names")
    }

    /// The name of each of `columns` columns (`None`: keep), or `None` if
    /// the select items do not add up to that many.
    fn resolve(&self, columns: usize) -> Option<Vec<Option<&str>>> {
        let stars = self.0.iter().filter(|i| **i == Item::Star).count();
        let fixed = self.0.len() - stars;
        let star_width = match stars {
            0 if fixed == columns => 0,
            1 if columns >= fixed => columns - fixed,
            _ => return None,
        };
        let mut names = Vec::with_capacity(columns);
        for item in &self.0 {
            match item {
                Item::Keep => names.push(None),
                Item::Rename(n) => names.push(Some(n.as_str())),
                Item::Star => names.extend(std::iter::repeat_n(None, star_width)),
            }
        }
        Some(names)
    }

    /// `schema` with these names (unchanged if they do not fit it).
    pub fn apply(&self, schema: &SchemaRef) -> SchemaRef {
        let Some(names) = self.resolve(schema.fields().len()) else { return schema.clone() };
        let fields = schema.fields().iter().zip(names).map(|(f, name)| match name {
            Some(n) => Arc::new(f.as_ref().clone().with_name(n)),
            None => f.clone(),
        });
        Arc::new(Schema::new_with_metadata(fields.collect::<Vec<_>>(), schema.metadata().clone()))
    }

    /// `rows` with these names.
    pub fn rename(&self, rows: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = self.apply(&rows.schema());
        let renamed = schema.clone();
        let rows = rows.map(move |batch| {
            let batch = batch?;
            Ok(RecordBatch::try_new(renamed.clone(), batch.columns().to_vec())?)
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, rows))
    }
}

fn first_select(query: &Query) -> Option<&ast::Select> {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::Select(s) => return Some(s),
            SetExpr::Query(q) => body = q.body.as_ref(),
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            _ => return None,
        }
    }
}

fn first_select_mut(query: &mut Query) -> Option<&mut ast::Select> {
    let mut body = query.body.as_mut();
    loop {
        match body {
            SetExpr::Select(s) => return Some(s),
            SetExpr::Query(q) => body = q.body.as_mut(),
            SetExpr::SetOperation { left, .. } => body = left.as_mut(),
            _ => return None,
        }
    }
}

fn is_star(item: &SelectItem) -> bool {
    matches!(item, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..))
}

/// Postgres's name for an unaliased select item `e` if it differs from
/// DataFusion's, and whether it is a strong name (a column's or a
/// function's, which a cast keeps) rather than a fallback (which a cast
/// replaces with its type's name).
fn pg_name(e: &Expr) -> Option<(String, bool)> {
    let weak = |name: &str| Some((name.to_string(), false));
    match e {
        // DataFusion names a column by its name already.
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => None,
        // A cast to json/jsonb, which becomes a call (see `pg_compat`).
        Expr::Function(f) if json_cast_argument(f).is_some() => match json_cast_argument(f).and_then(column_name) {
            Some(name) => Some((name, true)),
            None => function_name(f).map(|n| (if n == crate::json::UUID_CAST { "uuid".into() } else { n }, false)),
        },
        Expr::Function(f) => function_name(f).map(|n| (n, true)),
        Expr::Cast { expr, data_type, .. } => match column_name(expr) {
            Some(name) => Some((name, true)),
            None => match pg_name(expr) {
                Some((name, true)) => Some((name, true)),
                _ => Some((type_name(data_type), false)),
            },
        },
        Expr::Nested(inner) => pg_name(inner),
        Expr::Case { .. } => weak("case"),
        Expr::Exists { .. } => weak("exists"),
        Expr::Array(_) => weak("array"),
        Expr::Interval(_) => weak("interval"),
        Expr::TypedString(t) => Some((type_name(&t.data_type), false)),
        Expr::Subquery(q) => match first_select(q).and_then(|s| s.projection.first()) {
            Some(SelectItem::UnnamedExpr(inner)) => match column_name(inner) {
                Some(name) => Some((name, true)),
                None => pg_name(inner).or_else(|| weak(UNNAMED)),
            },
            Some(SelectItem::ExprWithAlias { alias, .. }) => Some((alias.value.clone(), true)),
            _ => weak(UNNAMED),
        },
        Expr::Extract { .. } => weak("extract"),
        Expr::Substring { .. } => weak("substring"),
        Expr::Position { .. } => weak("position"),
        Expr::Ceil { .. } => weak("ceil"),
        Expr::Floor { .. } => weak("floor"),
        Expr::AtTimeZone { .. } => weak("timezone"),
        Expr::Collate { expr, .. } => pg_name(expr),
        _ => weak(UNNAMED),
    }
}

/// The name Postgres gives an unaliased item `e` of a select list or a
/// `RETURNING`: a column's name, a function's, a cast's type, or
/// `?column?`.
pub(crate) fn item_name(e: &Expr) -> String {
    column_name(e).or_else(|| pg_name(e).map(|(name, _)| name)).unwrap_or_else(|| UNNAMED.to_string())
}

/// The name of a column reference (`v`, `t.v`), if `e` is one.
fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        _ => None,
    }
}

/// The argument of `f` if it is what a cast to json/jsonb/uuid was
/// rewritten to.
fn json_cast_argument(f: &Function) -> Option<&Expr> {
    let name = function_name(f)?;
    if ![crate::json::JSON_CAST, crate::json::JSONB_CAST, crate::json::UUID_CAST].contains(&name.as_str()) {
        return None;
    }
    match &f.args {
        ast::FunctionArguments::List(list) => match list.args.as_slice() {
            [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))] => Some(e),
            _ => None,
        },
        _ => None,
    }
}

fn function_name(f: &Function) -> Option<String> {
    match f.name.0.last()? {
        ObjectNamePart::Identifier(i) if i.quote_style.is_some() => Some(i.value.clone()),
        ObjectNamePart::Identifier(i) => Some(i.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// The name Postgres gives type `t` in column names (`int4`, not `integer`).
fn type_name(t: &DataType) -> String {
    match t {
        DataType::SmallInt(_) | DataType::Int2(_) => "int2".into(),
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4".into(),
        DataType::BigInt(_) | DataType::Int8(_) => "int8".into(),
        DataType::Real | DataType::Float4 => "float4".into(),
        DataType::Double(_) | DataType::DoublePrecision | DataType::Float8 => "float8".into(),
        DataType::Float(ast::ExactNumberInfo::Precision(p)) if *p <= 24 => "float4".into(),
        DataType::Float(_) => "float8".into(),
        DataType::Numeric(_) | DataType::Decimal(_) => "numeric".into(),
        DataType::Boolean | DataType::Bool => "bool".into(),
        DataType::Text => "text".into(),
        DataType::Varchar(_) | DataType::CharacterVarying(_) => "varchar".into(),
        DataType::Char(_) | DataType::Character(_) => "bpchar".into(),
        DataType::Timestamp(_, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone) => "timestamptz".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Time(..) => "time".into(),
        DataType::Date => "date".into(),
        DataType::JSON => "json".into(),
        DataType::JSONB => "jsonb".into(),
        DataType::Bytea => "bytea".into(),
        DataType::Uuid => "uuid".into(),
        DataType::Interval { .. } => "interval".into(),
        // An array is named by its element type (`'{1}'::int[]` is `int4`).
        DataType::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::AngleBracket(inner)
            | ast::ArrayElemTypeDef::Parenthesis(inner),
        ) => type_name(inner),
        other => other.to_string().to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str, columns: usize) -> Option<Vec<Option<String>>> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().pop().unwrap();
        let names = ColumnNames::of(&stmt)?;
        Some(names.resolve(columns)?.into_iter().map(|n| n.map(str::to_string)).collect())
    }

    fn all(sql: &str, columns: usize) -> Vec<String> {
        names(sql, columns).unwrap().into_iter().map(|n| n.unwrap_or_else(|| "<kept>".into())).collect()
    }

    #[test]
    fn names_follow_postgres() {
        assert_eq!(all("SELECT count(*), max(v), now(), COUNT(*) FROM t", 4), ["count", "max", "now", "count"]);
        assert_eq!(all("SELECT 1, 'a', v + 1, -v, fact->>'x' FROM t", 5), ["?column?"; 5]);
        assert_eq!(all("SELECT v, t.v, v AS n, 1 FROM t", 4), ["<kept>", "<kept>", "<kept>", "?column?"]);
        assert_eq!(
            all("SELECT v::text, now()::date, '1'::int, (1 + 2)::bigint FROM t", 4),
            ["v", "now", "int4", "int8"]
        );
        assert_eq!(all("SELECT '{1}'::int[], $1::text[], '{}'::float8[] FROM t", 3), ["int4", "text", "float8"]);
        assert_eq!(
            all("SELECT CASE WHEN v THEN 1 END, (count(*)), coalesce(v, 0) FROM t", 3),
            ["case", "count", "coalesce"]
        );
        assert_eq!(all("SELECT (SELECT max(v) FROM t), EXISTS (SELECT 1) FROM u", 2), ["max", "exists"]);
        assert_eq!(all("SELECT count(*) FROM t UNION ALL SELECT 1", 1), ["count"]);
        assert_eq!(
            all("SELECT TIMESTAMP '2020-01-01', '1'::timestamptz, x::timestamp FROM t", 3),
            ["timestamp", "timestamptz", "x"]
        );
    }

    #[test]
    fn json_casts_are_named_after_the_rewrite_too() {
        let mut stmt =
            Parser::parse_sql(&PostgreSqlDialect {}, "SELECT '{}'::jsonb, f::json, '[]'::jsonb::text FROM t")
                .unwrap()
                .pop()
                .unwrap();
        crate::sql::pg_compat::rewrite(&mut stmt);
        let names = ColumnNames::of(&stmt).unwrap();
        assert_eq!(names.resolve(3).unwrap(), [Some("jsonb"), Some("f"), Some("text")]);
    }

    #[test]
    fn stars_expand_to_kept_names() {
        assert_eq!(all("SELECT *, count(*) OVER () FROM t", 3), ["<kept>", "<kept>", "count"]);
        assert_eq!(all("SELECT 1, t.* FROM t", 3), ["?column?", "<kept>", "<kept>"]);
        // Two stars: which columns come from which is not known here.
        assert_eq!(names("SELECT *, 1, * FROM t", 5), None);
        // Nothing to rename, or not a query.
        assert_eq!(names("SELECT v, w AS x FROM t", 2), None);
        assert_eq!(names("SHOW ALL", 2), None);
        // The plan has a different number of columns: leave it alone.
        assert_eq!(names("SELECT count(*) FROM t", 2), None);
    }
}
