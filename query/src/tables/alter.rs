//! `ALTER TABLE` (and `ALTER STREAM`): the column changes a definition can
//! take without rewriting what is stored.
//!
//! Rows and records keep the columns they were written with
//! ([`brikk_storage::codec`]), so each change is a new definition in the
//! catalog and nothing else:
//!
//! * `ADD [COLUMN] [IF NOT EXISTS] name type [NOT NULL] [DEFAULT expr]`:
//!   existing rows and records read the default, evaluated once now (as
//!   Postgres does for a default that is not volatile), or NULL. `NOT NULL`
//!   without a default needs an empty relation (`23502` otherwise). A
//!   volatile default (`random()`, `gen_random_uuid()`) would need a value
//!   per existing row and is refused;
//! * `RENAME [COLUMN] a TO b`;
//! * `ALTER [COLUMN] c SET DEFAULT expr | DROP DEFAULT | DROP NOT NULL`.
//!
//! Several changes in one statement apply together or not at all.
//! `RENAME TO new_name` renames a table (with its changelog), a stream or a
//! view, on its own ([`check_rename`]). Other forms (dropping a column,
//! changing a type, constraints) are `0A000`.

use brikk_storage::{AlterColumns, ColumnDef, Store};
use datafusion::execution::context::SessionState;
use datafusion::sql::sqlparser::ast::{self, AlterColumnOperation, AlterTableOperation, ColumnOption};

use crate::catalog::{SYSTEM_COLUMNS, TABLE_SYSTEM_COLUMNS};
use crate::error::{Error, ObjectKind, Result};
use crate::sql::parser::normalize;
use crate::types::column_type;

/// The relation `at` names, the changes it asks for, checked against the
/// relation's current definition (the committer checks them again against
/// the definition they apply to), and the columns `ADD COLUMN IF NOT
/// EXISTS` finds already there.
pub fn changes(
    state: &SessionState,
    store: &Store,
    at: &ast::AlterTable,
) -> Result<(String, Vec<AlterColumns>, Vec<String>)> {
    let name = at.name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
    let table = store.table(&name);
    let stream = store.stream(&name);
    let columns: Vec<ColumnDef> = match (&table, &stream) {
        (Some(t), _) => t.def.columns.clone(),
        (None, Some(s)) if s.def.changelog_of.is_some() => {
            return Err(Error::WrongObjectType(format!(
                "\"{name}\" is the changelog of a table; alter the table instead"
            )))
        }
        (None, Some(s)) if s.def.archive.is_some() => {
            return Err(Error::Unsupported(format!(
            "ALTER of stream \"{name}\", which archives to Parquet (its files keep the columns they were written with)"
        )))
        }
        (None, Some(s)) => s.def.columns.clone(),
        (None, None) if crate::catalog::system::NAMES.contains(&name.as_str()) => {
            return Err(Error::WrongObjectType(format!("\"{name}\" is a system table")))
        }
        (None, None) => return Err(Error::NotFound { kind: ObjectKind::Relation, name }),
    };
    let column = |ident: &ast::Ident| -> Result<&ColumnDef> {
        let c = normalize(ident);
        columns
            .iter()
            .find(|d| d.name == c)
            .ok_or_else(|| Error::NotFound { kind: ObjectKind::Column, name: format!("{c}\" of relation \"{name}") })
    };
    let in_key = |c: &ColumnDef| {
        let i = columns.iter().position(|d| d.name == c.name);
        table.as_ref().is_some_and(|t| i.is_some_and(|i| t.def.primary_key.contains(&i)))
            || stream.as_ref().is_some_and(|s| i.is_some() && s.def.key_column == i)
    };
    let mut out = Vec::with_capacity(at.operations.len());
    for op in &at.operations {
        out.push(match op {
            AlterTableOperation::AddColumn { if_not_exists, column_def, column_position: None, .. } => {
                AlterColumns::Add { column: added_column(state, column_def)?, if_not_exists: *if_not_exists }
            }
            AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                let from = column(old_column_name)?.name.clone();
                let to = normalize(new_column_name);
                reserved(&to)?;
                AlterColumns::Rename { from, to }
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let c = column(column_name)?;
                let identity =
                    || Error::Syntax(format!("column \"{}\" of relation \"{name}\" is an identity column", c.name));
                match op {
                    AlterColumnOperation::SetDefault { value } => {
                        if c.identity.is_some() {
                            return Err(identity());
                        }
                        let mut with = c.clone();
                        with.default = Some(crate::defaults::text_of(value));
                        crate::defaults::check(state, std::slice::from_ref(&with))?;
                        AlterColumns::SetDefault { column: c.name.clone(), default: with.default }
                    }
                    AlterColumnOperation::DropDefault => {
                        AlterColumns::SetDefault { column: c.name.clone(), default: None }
                    }
                    AlterColumnOperation::DropNotNull => {
                        if in_key(c) {
                            return Err(Error::InvalidTableDefinition(format!(
                                "column \"{}\" is in a primary key",
                                c.name
                            )));
                        }
                        if c.identity.is_some() {
                            return Err(identity());
                        }
                        AlterColumns::DropNotNull { column: c.name.clone() }
                    }
                    other => return Err(Error::Unsupported(format!("ALTER COLUMN … {other}"))),
                }
            }
            AlterTableOperation::RenameTable { .. } => {
                return Err(Error::Unsupported("RENAME TO together with other actions".into()))
            }
            other => return Err(Error::Unsupported(format!("ALTER TABLE … {}", first_words(other)))),
        });
    }
    let present = out
        .iter()
        .filter_map(|c| match c {
            AlterColumns::Add { column, if_not_exists: true } => Some(&column.name),
            _ => None,
        })
        .filter(|n| columns.iter().any(|c| &c.name == *n))
        .cloned()
        .collect();
    Ok((name, out, present))
}

/// Checks `ALTER TABLE old RENAME TO new`: `old` exists and is not a
/// system table or changelog, `new` is a name a relation may take, and no
/// continuous query or view reads or writes `old` (they name it in their
/// text, and would stop working).
pub fn check_rename(store: &Store, old: &str, new: &str) -> Result<()> {
    let exists = store.table(old).is_some() || store.stream(old).is_some() || store.view(old).is_some();
    if !exists {
        if crate::catalog::system::NAMES.contains(&old) {
            return Err(Error::WrongObjectType(format!("\"{old}\" is a system table")));
        }
        return Err(Error::NotFound { kind: ObjectKind::Relation, name: old.to_string() });
    }
    if new.contains('$') {
        return Err(Error::ReservedName(format!("relation names cannot contain \"$\": \"{new}\"")));
    }
    let taken = store.table(new).is_some() || store.stream(new).is_some() || store.view(new).is_some();
    if taken || crate::catalog::system::NAMES.contains(&new) {
        return Err(Error::AlreadyExists { kind: ObjectKind::Relation, name: new.to_string() });
    }
    let queries = crate::continuous::def::QueryDef::load_all(store)?;
    if let Some(q) = queries.iter().find(|q| q.sink == old || q.inputs.iter().any(|i| i == old)) {
        return Err(Error::WrongState(format!(
            "continuous query \"{}\" uses \"{old}\"; drop it before renaming",
            q.name
        )));
    }
    // The first view, by name, that names it: one found first.
    if let Some((view, _)) = crate::catalog::views::dependents(store, &[old.to_string()])?.into_iter().next() {
        return Err(Error::WrongState(format!("view \"{view}\" reads \"{old}\"; drop it before renaming")));
    }
    Ok(())
}

/// The definition of a column `ADD COLUMN` appends, with the value existing
/// rows read in it.
fn added_column(state: &SessionState, def: &ast::ColumnDef) -> Result<ColumnDef> {
    let name = normalize(&def.name);
    reserved(&name)?;
    let ty = column_type(&def.data_type)?;
    let mut column = ColumnDef { name, ty, nullable: true, default: None, identity: None, missing: None };
    for opt in &def.options {
        match &opt.option {
            ColumnOption::NotNull => column.nullable = false,
            ColumnOption::Null => {}
            ColumnOption::Default(e) => column.default = Some(crate::defaults::text_of(e)),
            other => return Err(Error::Unsupported(format!("ADD COLUMN with {other}"))),
        }
    }
    column.missing = crate::defaults::value_once(state, &column)?;
    Ok(column)
}

fn reserved(name: &str) -> Result<()> {
    if SYSTEM_COLUMNS.contains(&name) || TABLE_SYSTEM_COLUMNS.contains(&name) {
        return Err(Error::ReservedName(format!("column name \"{name}\" is reserved for a system column")));
    }
    Ok(())
}

/// The operation's first words, to name it in an error.
fn first_words(op: &AlterTableOperation) -> String {
    op.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}
