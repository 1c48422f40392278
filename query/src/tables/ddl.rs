//! `CREATE TABLE` as a table definition.

use brikk_storage::{now_micros, ColumnDef, ColumnType, Identity, StreamId, TableDef, TableId};
use datafusion::sql::sqlparser::ast::{self, ColumnOption, GeneratedAs, TableConstraint};

use crate::catalog::keyed_table::TABLE_SYSTEM_COLUMNS;
use crate::catalog::SYSTEM_COLUMNS;
use crate::error::{Error, ObjectKind, Result};
use crate::sql::parser::normalize;
use crate::types::column_type;

/// The definition `CREATE TABLE` asks for (ids are assigned when it is
/// stored). A table needs a primary key: it is how agents address facts,
/// and what compare-and-set and upserts act on.
pub fn table_def(ct: &ast::CreateTable) -> Result<TableDef> {
    if ct.query.is_some() {
        return Err(Error::Unsupported(
            "CREATE TABLE … AS (a table needs a primary key: CREATE TABLE … (…, PRIMARY KEY (…)), \
             then INSERT INTO … SELECT …)"
                .into(),
        ));
    }
    if ct.like.is_some() {
        return Err(Error::Unsupported("CREATE TABLE … (LIKE other) (name the columns and the primary key)".into()));
    }
    if ct.temporary {
        return Err(Error::Unsupported("CREATE TEMPORARY TABLE".into()));
    }
    let name = ct.name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
    if name.contains('$') {
        return Err(Error::ReservedName(format!("table names cannot contain \"$\": \"{name}\"")));
    }
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(ct.columns.len());
    let mut primary_key: Vec<usize> = Vec::new();
    for c in &ct.columns {
        let cname = normalize(&c.name);
        if SYSTEM_COLUMNS.contains(&cname.as_str()) || TABLE_SYSTEM_COLUMNS.contains(&cname.as_str()) {
            return Err(Error::ReservedName(format!("column name \"{cname}\" is reserved for a system column")));
        }
        if columns.iter().any(|d| d.name == cname) {
            return Err(Error::AlreadyExists { kind: ObjectKind::Column, name: cname });
        }
        let (ty, mut identity) = match serial_type(&c.data_type) {
            Some(ty) => (ty, Some(Identity::ByDefault)),
            None => (column_type(&c.data_type)?, None),
        };
        let mut nullable = identity.is_none();
        let mut default = None;
        for opt in &c.options {
            match &opt.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Null => {}
                ColumnOption::Default(e) => default = Some(crate::defaults::text_of(e)),
                ColumnOption::Generated { generated_as, sequence_options, generation_expr: None, .. } => {
                    if identity.is_some() {
                        return Err(Error::Syntax(format!(
                            "multiple identity specifications for column \"{cname}\" of table \"{name}\""
                        )));
                    }
                    if sequence_options.as_ref().is_some_and(|o| !o.is_empty()) {
                        return Err(Error::Unsupported("sequence options of an identity column".into()));
                    }
                    identity = Some(match generated_as {
                        GeneratedAs::Always => Identity::Always,
                        _ => Identity::ByDefault,
                    });
                    nullable = false;
                }
                ColumnOption::PrimaryKey(_) => {
                    if !primary_key.is_empty() {
                        return Err(Error::Plan(format!("multiple primary keys for table \"{name}\" are not allowed")));
                    }
                    primary_key.push(columns.len());
                    nullable = false;
                }
                other => return Err(Error::Unsupported(format!("column option {other}"))),
            }
        }
        if identity.is_some() {
            if crate::types::integer_range(ty).is_none() {
                return Err(Error::InvalidParameter(format!(
                    "identity column type must be smallint, integer, or bigint (column \"{cname}\" is {})",
                    ty.sql_name()
                )));
            }
            if default.is_some() {
                return Err(Error::Syntax(format!(
                    "both default and identity specified for column \"{cname}\" of table \"{name}\""
                )));
            }
        }
        columns.push(ColumnDef { name: cname, ty, nullable, default, identity, missing: None });
    }
    for constraint in &ct.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if !primary_key.is_empty() {
                    return Err(Error::Plan(format!("multiple primary keys for table \"{name}\" are not allowed")));
                }
                for ic in &pk.columns {
                    let cname = match &ic.column.expr {
                        ast::Expr::Identifier(i) => normalize(i),
                        other => return Err(Error::Unsupported(format!("primary key expression {other}"))),
                    };
                    let idx = columns.iter().position(|d| d.name == cname).ok_or_else(|| Error::NotFound {
                        kind: ObjectKind::Column,
                        name: format!("{cname}\" named in key of \"{name}"),
                    })?;
                    if primary_key.contains(&idx) {
                        return Err(Error::AlreadyExists { kind: ObjectKind::Column, name: cname });
                    }
                    primary_key.push(idx);
                    columns[idx].nullable = false;
                }
            }
            other => return Err(Error::Unsupported(format!("table constraint {other}"))),
        }
    }
    if columns.is_empty() {
        return Err(Error::Syntax(format!("table \"{name}\" must have at least one column")));
    }
    if primary_key.is_empty() {
        return Err(Error::Unsupported(format!(
            "table \"{name}\" without a PRIMARY KEY (tables are addressed by key; use CREATE STREAM for an append-only log)"
        )));
    }
    Ok(TableDef {
        id: TableId(0),
        name,
        columns,
        primary_key,
        changelog: StreamId(0),
        created_at_micros: now_micros(),
        original_columns: None,
    })
}

/// The integer type of a `serial` pseudo-type (`smallserial`, `serial`,
/// `bigserial` and their `serialN` spellings), which Postgres expands to an
/// integer column numbered by a sequence.
fn serial_type(dt: &ast::DataType) -> Option<ColumnType> {
    let ast::DataType::Custom(name, args) = dt else { return None };
    if !args.is_empty() {
        return None;
    }
    match name.to_string().to_ascii_lowercase().as_str() {
        "smallserial" | "serial2" => Some(ColumnType::SmallInt),
        "serial" | "serial4" => Some(ColumnType::Integer),
        "bigserial" | "serial8" => Some(ColumnType::BigInt),
        _ => None,
    }
}
