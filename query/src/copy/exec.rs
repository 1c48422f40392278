//! Running COPY in a session.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use datafusion::sql::sqlparser::ast::{self, CopyLegacyOption, CopyOption, CopySource, CopyTarget};
use futures::{StreamExt, TryStreamExt};

use crate::copy::decode::{at, read_parquet, CopyIn, Decoded, Destination, RowSink};
use crate::copy::encode::{batch_lines, file_error, header_line, FileWriter};
use crate::copy::format::{CopyFormat, Format};
use crate::error::{Error, ObjectKind, Result};
use crate::session::exec::Session;
use crate::session::output::Output;
use crate::sql::parser::{normalize, object_name, quote_ident};
use crate::sql::Statement;

/// Bytes read from a file per decoding step.
const READ_CHUNK: usize = 1 << 20;

impl Session {
    /// Runs a COPY statement (see [`crate::copy`]).
    pub(crate) async fn copy(
        &mut self,
        source: CopySource,
        to: bool,
        target: CopyTarget,
        options: Vec<CopyOption>,
        legacy: Vec<CopyLegacyOption>,
    ) -> Result<Output> {
        let path = match &target {
            CopyTarget::File { filename } => Some(filename.clone()),
            CopyTarget::Stdin | CopyTarget::Stdout => None,
            CopyTarget::Program { .. } => return Err(Error::Unsupported("COPY … PROGRAM".into())),
        };
        let format = CopyFormat::from_options(&options, &legacy, path.as_deref())?;
        if let Some(p) = &path {
            if !Path::new(p).is_absolute() {
                return Err(Error::InvalidParameter(format!(
                    "relative path not allowed for COPY to or from a file: \"{p}\""
                )));
            }
        }
        if to {
            self.copy_to(source, path, format).await
        } else {
            self.copy_from(source, path, format).await
        }
    }

    async fn copy_to(&mut self, source: CopySource, path: Option<String>, format: CopyFormat) -> Result<Output> {
        let query = match source {
            CopySource::Query(q) => ast::Statement::Query(q),
            CopySource::Table { table_name, columns } => {
                let name = object_name(&table_name)?;
                let cols = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns.iter().map(|c| quote_ident(&normalize(c))).collect::<Vec<_>>().join(", ")
                };
                let sql = format!("SELECT {cols} FROM {}", quote_ident(&name));
                match crate::sql::parse(&sql, &self.db.shared().compat)?.pop() {
                    Some(Statement::Sql(s)) => *s,
                    _ => return Err(Error::Internal("COPY query did not parse".into())),
                }
            }
        };
        // In the session's zone, as a query's rows are shown.
        let mut batches = match self.query(query, &[]).await?.in_time_zone(self.vars.zone()) {
            Output::Rows(rows) => rows,
            other => return Err(Error::Internal(format!("COPY query gave {other:?}"))),
        };
        let schema = batches.schema();
        match path {
            Some(p) => {
                let mut w = FileWriter::create(Path::new(&p), format, schema)?;
                while let Some(b) = batches.try_next().await? {
                    w.write(&b)?;
                }
                Ok(Output::Command { tag: "COPY".into(), rows: Some(w.finish()?) })
            }
            None => {
                if format.format == Format::Parquet {
                    return Err(Error::Unsupported(
                        "COPY TO STDOUT in parquet (write a file, or use text, csv or json)".into(),
                    ));
                }
                let columns = schema.fields().len();
                let mut header = format.header.then(|| header_line(&schema, &format));
                let rows = batches
                    .map_err(Error::from)
                    .map_ok(move |b| {
                        let lines: Vec<Result<Bytes>> = match batch_lines(&b, &format) {
                            Ok(lines) => lines
                                .into_iter()
                                .map(|mut line| {
                                    if let Some(mut h) = header.take() {
                                        h.append(&mut line);
                                        line = h;
                                    }
                                    Ok(Bytes::from(line))
                                })
                                .collect(),
                            Err(e) => vec![Err(e)],
                        };
                        futures::stream::iter(lines)
                    })
                    .try_flatten()
                    .boxed();
                Ok(Output::CopyOut { columns, rows })
            }
        }
    }

    async fn copy_from(&mut self, source: CopySource, path: Option<String>, format: CopyFormat) -> Result<Output> {
        let CopySource::Table { table_name, columns } = source else {
            return Err(Error::Syntax("COPY (query) FROM is not valid: COPY FROM needs a stream or table".into()));
        };
        let name = object_name(&table_name)?;
        let store = self.db.shared().store.clone();
        // A table's rows go through INSERT's path (defaults, identities,
        // keys, constraints); a stream's become appends here.
        let (relation_columns, system, stream): (_, &[&str], _) = match (store.stream(&name), store.table(&name)) {
            (_, Some(t)) => (t.def.columns.clone(), &crate::catalog::TABLE_SYSTEM_COLUMNS, None),
            (Some(s), None) => (s.def.columns.clone(), &crate::catalog::SYSTEM_COLUMNS, Some(s)),
            (None, None) => {
                return Err(match store.view(&name) {
                    Some(_) => Error::WrongObjectType(format!("cannot copy to view \"{name}\"")),
                    None => Error::NotFound { kind: ObjectKind::Relation, name },
                })
            }
        };
        let targets = if columns.is_empty() {
            (0..relation_columns.len()).collect()
        } else {
            let mut out = Vec::with_capacity(columns.len());
            for c in &columns {
                let n = normalize(c);
                if system.contains(&n.as_str()) {
                    return Err(Error::GeneratedColumn(n));
                }
                let i = relation_columns.iter().position(|col| col.name == n).ok_or_else(|| Error::NotFound {
                    kind: ObjectKind::Column,
                    name: format!("{n}\" of relation \"{name}"),
                })?;
                if out.contains(&i) {
                    return Err(Error::Syntax(format!("column \"{n}\" specified more than once")));
                }
                out.push(i);
            }
            out
        };
        let into = match stream {
            None => Destination::Table { rows: Vec::new() },
            Some(stream) => {
                let state = self.state();
                let defaults =
                    crate::defaults::Defaults::compile(&state, &stream.def.columns, &targets)?.resolved(&state)?;
                Destination::Stream { stream, appends: Vec::new(), zone: self.vars.zone().to_string(), defaults }
            }
        };
        let sink = RowSink { relation: name, columns: relation_columns, targets, into };
        let Some(p) = path else {
            return Ok(Output::CopyIn(CopyIn::new(sink, format)));
        };
        let file = std::fs::File::open(&p).map_err(|e| file_error(Path::new(&p), e))?;
        let decoded = tokio::task::spawn_blocking(move || -> Result<_> {
            if format.format == Format::Parquet {
                let mut sink = sink;
                read_parquet(file, &mut sink, &p)?;
                return Ok(sink.decoded());
            }
            let mut copy = CopyIn::new(sink, format);
            let mut file = file;
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let got = file.read(&mut buf).map_err(|e| file_error(Path::new(&p), e))?;
                if got == 0 {
                    break;
                }
                copy.feed(&buf[..got]);
            }
            copy.finish()
        })
        .await
        .map_err(|e| Error::Internal(format!("COPY task failed: {e}")))??;
        self.copy_decoded(decoded).await
    }

    /// Finishes a `COPY … FROM STDIN` after the client's `CopyDone`: every
    /// row is written in one atomic write (or joins the open transaction),
    /// or none is and the transaction is failed, as for any statement.
    pub async fn copy_in_done(&mut self, mut copy: CopyIn) -> Result<Output> {
        let _running = copy.kept.take();
        let r = match copy.finish() {
            Ok(decoded) => self.copy_decoded(decoded).await,
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.fail();
        }
        r
    }

    /// Writes what COPY decoded: appends in one write (or into the open
    /// transaction); a table's rows each through a prepared `INSERT`, all
    /// in the open transaction or in one of their own, so that a row INSERT
    /// refuses (a duplicate key, a NULL in a NOT NULL column) writes none.
    async fn copy_decoded(&mut self, decoded: Decoded) -> Result<Output> {
        let n = decoded.len();
        match decoded {
            Decoded::Appends(writes) => {
                self.write(writes).await?;
            }
            Decoded::Rows { relation, columns, rows } => {
                let columns: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
                let values: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    quote_ident(&relation),
                    columns.join(", "),
                    values.join(", ")
                );
                let insert = Box::pin(self.prepare(&sql, &[])).await?;
                let opened = self.begin_steps();
                let mut done = Ok(());
                for (i, row) in rows.into_iter().enumerate() {
                    if let Err(e) = Box::pin(self.run_current(&insert, row)).await {
                        done = Err(at(e, "row", i + 1));
                        break;
                    }
                }
                self.end_steps(opened, done).await?;
            }
        }
        Ok(Output::Command { tag: "COPY".into(), rows: Some(n) })
    }
}
