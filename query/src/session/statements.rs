//! `PREPARE`, `EXECUTE` and `DEALLOCATE` as SQL statements: a session's
//! named prepared statements, as in Postgres.
//!
//! ```sql
//! PREPARE add_task (text, int) AS INSERT INTO tasks VALUES ($1, 'build', $2);
//! EXECUTE add_task('t1', 3);
//! DEALLOCATE add_task;   -- or DEALLOCATE ALL
//! ```
//!
//! A statement is planned once at `PREPARE` (the types listed type `$1`,
//! `$2`…; the others are inferred) and run by each `EXECUTE` with its
//! arguments, constant expressions cast to the parameters' types, through
//! the same path as a prepared statement of the extended protocol (an
//! `ALTER` since makes it plan again). The names live until the session
//! ends or `DEALLOCATE`. A duplicate name is `42P05`, an unknown one
//! `26000`, a wrong number of arguments `42601`.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast;

use crate::error::{Error, ObjectKind, Result};
use crate::session::exec::command;
use crate::session::output::Output;
use crate::session::Session;
use crate::sql::parser::normalize;

impl Session {
    /// `PREPARE name [(types)] AS statement`.
    pub(crate) async fn prepare_named(
        &mut self,
        name: &ast::Ident,
        types: &[ast::DataType],
        statement: &ast::Statement,
    ) -> Result<Output> {
        let name = normalize(name);
        if self.statements.contains_key(&name) {
            return Err(Error::AlreadyExists { kind: ObjectKind::Statement, name });
        }
        let declared = types
            .iter()
            .map(|t| crate::types::column_type(t).map(|c| Some(crate::types::arrow_type(c))))
            .collect::<Result<Vec<Option<DataType>>>>()?;
        let prepared = self.prepare(&statement.to_string(), &declared).await?;
        self.statements.insert(name, Arc::new(prepared));
        Ok(command("PREPARE", None))
    }

    /// `EXECUTE name [(arguments)]`.
    pub(crate) async fn execute_named(&mut self, name: &ast::ObjectName, arguments: &[ast::Expr]) -> Result<Output> {
        let name = name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default();
        let prepared = self
            .statements
            .get(&name)
            .cloned()
            .ok_or_else(|| Error::NotFound { kind: ObjectKind::Statement, name: name.clone() })?;
        let types = prepared.param_types();
        if arguments.len() != types.len() {
            return Err(Error::Syntax(format!(
                "wrong number of parameters for prepared statement \"{name}\": expected {}, got {}",
                types.len(),
                arguments.len()
            )));
        }
        let mut params = Vec::with_capacity(arguments.len());
        for (argument, ty) in arguments.iter().zip(types) {
            params.push(self.constant(argument, ty).await?);
        }
        Box::pin(self.run_current(&prepared, params)).await
    }

    /// `DEALLOCATE [PREPARE] name | ALL`. A name this session did not
    /// `PREPARE` is left alone: drivers deallocate the statements they
    /// prepared through the protocol so, which are not kept here.
    pub(crate) fn deallocate(&mut self, name: &ast::Ident) -> Output {
        if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
            self.statements.clear();
            return command("DEALLOCATE ALL", None);
        }
        self.statements.remove(&normalize(name));
        command("DEALLOCATE", None)
    }

    /// The value of a constant expression (an EXECUTE argument) as `ty`.
    async fn constant(&self, e: &ast::Expr, ty: &DataType) -> Result<ScalarValue> {
        let sql = format!("SELECT {e}");
        let mut statements = crate::sql::parse(&sql, &self.db.shared().compat)?;
        let (Some(crate::sql::Statement::Sql(stmt)), true) = (statements.pop(), statements.is_empty()) else {
            return Err(Error::Syntax(format!("{e} is not an argument")));
        };
        let plan = Box::pin(self.db.plan_query(*stmt, self.vars.zone())).await?;
        if plan.schema().fields().len() != 1 {
            return Err(Error::Syntax(format!("{e} is not one value")));
        }
        let mut state = self.state().as_ref().clone();
        state.mark_start_execution();
        let physical = state.create_physical_plan(&plan).await?;
        let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
        let value = match batches.iter().find(|b| b.num_rows() > 0) {
            Some(b) => ScalarValue::try_from_array(b.column(0), 0)?,
            None => ScalarValue::Null,
        };
        Ok(value.cast_to(ty)?)
    }
}
