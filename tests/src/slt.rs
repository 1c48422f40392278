//! sqllogictest over the wire: each `.slt` record runs through
//! tokio-postgres' simple query protocol against a real server. Errors are
//! shown as `<SQLSTATE>: <message>`, so files assert codes with
//! `statement error 42P01`.

use std::fmt;

use async_trait::async_trait;
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::SimpleQueryMessage;

/// A server error with its SQLSTATE first.
#[derive(Debug)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

impl From<tokio_postgres::Error> for WireError {
    fn from(e: tokio_postgres::Error) -> WireError {
        match e.as_db_error() {
            Some(db) => WireError(format!("{}: {}", db.code().code(), db.message())),
            None => WireError(format!("client error: {e}")),
        }
    }
}

/// One sqllogictest connection.
pub struct Wire {
    client: tokio_postgres::Client,
}

impl Wire {
    pub async fn connect(conn_str: &str) -> Result<Wire, WireError> {
        let client = crate::connect(conn_str).await.map_err(|e| WireError(e.to_string()))?;
        Ok(Wire { client })
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Wire {
    type Error = WireError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, WireError> {
        let messages = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut count = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(desc) => columns = Some(desc.len()),
                SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push((0..row.len()).map(|i| row.get(i).unwrap_or("NULL").to_string()).collect());
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows { types: vec![DefaultColumnType::Any; n], rows },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "brikk"
    }
}
