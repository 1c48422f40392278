//! Brikk's SQL: splitting a query string into statements, the statements
//! DataFusion does not know (`CREATE STREAM`, `DROP STREAM`, `SHOW STREAMS`,
//! consumer groups, `COPY (SUBSCRIBE …) TO STDOUT`),
//! and the rewrites that make Postgres client SQL plan in DataFusion.

pub mod colnames;
pub mod continuous;
pub mod duration;
pub mod groups;
pub mod literal_rows;
pub mod parser;
pub mod pg_compat;
pub mod rewrite;
pub mod row_limits;
pub mod select_subqueries;
pub mod settings;
pub mod subscribe;
pub mod table_functions;
pub mod whole_rows;

pub use duration::{format_duration, format_size, parse_duration, parse_size};
pub use parser::{parse, CreateStream, Statement};
