//! Decoding COPY input into appends to a stream or rows for a table: text
//! and CSV records, JSON lines, Parquet files. Input can arrive in pieces
//! (`CopyData` messages); records are decoded as soon as they are complete.

use std::sync::Arc;

use brikk_storage::{Append, ColumnDef, StreamHandle, WriteSet};
use datafusion::arrow::array::RecordBatch;
use datafusion::scalar::ScalarValue;

use crate::copy::format::{CopyFormat, Format};
use crate::defaults::Defaults;
use crate::error::{Error, Result};
use crate::session::insert::encode_append;

/// Takes rows of source values for one relation: a stream's become
/// appends as INSERT makes them; a table's are kept, to be inserted by
/// INSERT's own path when the input ends ([`Decoded::Rows`]).
pub(crate) struct RowSink {
    /// The relation's name and columns (JSON keys and Parquet columns are
    /// matched to them by name).
    pub(crate) relation: String,
    pub(crate) columns: Vec<ColumnDef>,
    /// The column each source field fills, in order.
    pub(crate) targets: Vec<usize>,
    pub(crate) into: Destination,
}

/// Where a [`RowSink`]'s rows go.
pub(crate) enum Destination {
    Stream {
        stream: Arc<StreamHandle>,
        appends: Vec<Append>,
        /// The session's zone, for `timestamptz` text without an offset.
        zone: String,
        /// The defaults of the columns COPY leaves out.
        defaults: Defaults,
    },
    /// A table's rows, each its fields in `targets` order.
    Table { rows: Vec<Vec<ScalarValue>> },
}

/// What COPY input decoded to: appends to write, or rows to insert into
/// a table (`INSERT INTO relation (targets) VALUES …`).
pub(crate) enum Decoded {
    Appends(WriteSet),
    Rows { relation: String, columns: Vec<String>, rows: Vec<Vec<ScalarValue>> },
}

impl Decoded {
    pub(crate) fn len(&self) -> usize {
        match self {
            Decoded::Appends(w) => w.appends.len(),
            Decoded::Rows { rows, .. } => rows.len(),
        }
    }
}

impl RowSink {
    /// Appends one row; `fields` are in `targets` order.
    pub(crate) fn push(&mut self, fields: impl ExactSizeIterator<Item = ScalarValue>) -> Result<()> {
        if fields.len() != self.targets.len() {
            return Err(Error::BadCopyData(if fields.len() > self.targets.len() {
                format!("extra data after last expected column ({} columns expected)", self.targets.len())
            } else {
                format!("missing data: {} of {} columns", fields.len(), self.targets.len())
            }));
        }
        match &mut self.into {
            Destination::Stream { stream, appends, zone, defaults } => {
                appends.push(encode_append(stream, &self.targets, fields.map(Ok), zone, defaults, None)?);
            }
            Destination::Table { rows } => rows.push(fields.collect()),
        }
        Ok(())
    }

    /// Everything taken, as it is to be written.
    pub(crate) fn decoded(self) -> Decoded {
        match self.into {
            Destination::Stream { appends, .. } => Decoded::Appends(WriteSet::of_appends(appends)),
            Destination::Table { rows } => Decoded::Rows {
                columns: self.targets.iter().map(|&c| self.columns[c].name.clone()).collect(),
                relation: self.relation,
                rows,
            },
        }
    }

    /// Appends the rows of a batch whose columns are matched to the
    /// targets by name (`columns[i]` = batch column for target `i`, or None
    /// for NULL).
    pub(crate) fn push_batch(&mut self, batch: &RecordBatch, columns: &[Option<usize>]) -> Result<()> {
        for row in 0..batch.num_rows() {
            let mut fields = Vec::with_capacity(columns.len());
            for c in columns {
                fields.push(match c {
                    Some(i) => ScalarValue::try_from_array(batch.column(*i), row)?,
                    None => ScalarValue::Null,
                });
            }
            self.push(fields.into_iter())?;
        }
        Ok(())
    }
}

/// Adds "line N" (or "row N") to an input error, keeping its kind.
pub(crate) fn at(e: Error, what: &str, n: usize) -> Error {
    let m = |s: String| format!("COPY, {what} {n}: {s}");
    match e {
        Error::BadCopyData(s) => Error::BadCopyData(m(s)),
        Error::InvalidText(s) => Error::InvalidText(m(s)),
        Error::OutOfRange(s) => Error::OutOfRange(m(s)),
        Error::TypeMismatch(s) => Error::TypeMismatch(m(s)),
        Error::InvalidParameter(s) => Error::InvalidParameter(m(s)),
        other => other,
    }
}

/// A `COPY … FROM STDIN` in progress: fed the client's data, finished at
/// `CopyDone`. The first error is kept and reported at the end; later
/// data is ignored, as Postgres does.
pub struct CopyIn {
    pub(crate) sink: RowSink,
    format: CopyFormat,
    buf: Vec<u8>,
    line: usize,
    ended: bool,
    error: Option<Error>,
    /// Kept until the copy is finished ([`crate::Output::holding`]).
    pub(crate) kept: Option<crate::session::output::Kept>,
}

impl CopyIn {
    pub(crate) fn new(sink: RowSink, format: CopyFormat) -> CopyIn {
        CopyIn { sink, format, buf: Vec::new(), line: 0, ended: false, error: None, kept: None }
    }

    /// Columns the client sends.
    pub fn columns(&self) -> usize {
        self.sink.targets.len()
    }

    /// Takes the next piece of input.
    pub fn feed(&mut self, data: &[u8]) {
        if self.error.is_some() || self.ended {
            return;
        }
        self.buf.extend_from_slice(data);
        if self.format.format != Format::Parquet {
            if let Err(e) = self.drain(false) {
                self.error = Some(e);
            }
        }
    }

    /// Decodes what is left; every row, or the first error.
    pub(crate) fn finish(mut self) -> Result<Decoded> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.format.format == Format::Parquet {
            let bytes = bytes::Bytes::from(std::mem::take(&mut self.buf));
            read_parquet(bytes, &mut self.sink, "STDIN")?;
        } else {
            self.drain(true)?;
        }
        Ok(self.sink.decoded())
    }

    /// Decodes every complete record in the buffer (all of it at the end).
    pub(crate) fn drain(&mut self, at_end: bool) -> Result<()> {
        let mut pos = 0;
        loop {
            if self.ended {
                break;
            }
            let rest = &self.buf[pos..];
            let Some((fields, used, lines)) = next_record(rest, &self.format, at_end)? else { break };
            pos += used;
            self.line += 1;
            let line = self.line;
            self.line += lines.saturating_sub(1);
            let Some(fields) = fields else { continue };
            if line == 1 && self.format.header {
                continue;
            }
            let r = match fields {
                Fields::Values(v) => self.sink.push(v.into_iter().map(ScalarValue::Utf8)),
                Fields::End => {
                    self.ended = true;
                    Ok(())
                }
                Fields::Json(obj) => json_row(&mut self.sink, obj),
            };
            r.map_err(|e| at(e, "line", line))?;
        }
        self.buf.drain(..pos);
        Ok(())
    }
}

enum Fields {
    Values(Vec<Option<String>>),
    Json(serde_json::Map<String, serde_json::Value>),
    /// Text format's `\.` end marker.
    End,
}

/// The next record of `buf`: its fields (None for a blank JSON line), the
/// bytes it used and the lines it spans; None if it is not complete yet.
fn next_record(buf: &[u8], f: &CopyFormat, at_end: bool) -> Result<Option<(Option<Fields>, usize, usize)>> {
    if buf.is_empty() {
        return Ok(None);
    }
    match f.format {
        Format::Csv => {
            // A line of just `\.` ends the data here too (psql sends it).
            let end_line = buf.iter().position(|b| *b == b'\n').map(|i| (&buf[..i], i + 1));
            if let Some((line, used)) = end_line.or((at_end && !buf.is_empty()).then_some((buf, buf.len()))) {
                if line.strip_suffix(b"\r").unwrap_or(line) == b"\\." {
                    return Ok(Some((Some(Fields::End), used, 1)));
                }
            }
            Ok(csv_record(buf, f, at_end)?.map(|(v, used, lines)| (Some(Fields::Values(v)), used, lines)))
        }
        Format::Text | Format::Json => {
            let (line, used) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], i + 1),
                None if at_end => (buf, buf.len()),
                None => return Ok(None),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = std::str::from_utf8(line).map_err(|_| Error::BadCopyData("invalid UTF-8".into()))?;
            if f.format == Format::Json {
                if text.trim().is_empty() {
                    return Ok(Some((None, used, 1)));
                }
                let v: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| Error::BadCopyData(format!("invalid JSON: {e}")))?;
                let serde_json::Value::Object(obj) = v else {
                    return Err(Error::BadCopyData("each JSON line must be an object".into()));
                };
                return Ok(Some((Some(Fields::Json(obj)), used, 1)));
            }
            if text == "\\." {
                return Ok(Some((Some(Fields::End), used, 1)));
            }
            Ok(Some((Some(Fields::Values(text_fields(text, f)?)), used, 1)))
        }
        Format::Parquet => Ok(None),
    }
}

/// Splits a text-format line and undoes its escapes.
fn text_fields(line: &str, f: &CopyFormat) -> Result<Vec<Option<String>>> {
    let delim = f.delimiter as char;
    line.split(delim)
        .map(|raw| {
            if raw == f.null {
                return Ok(None);
            }
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars().peekable();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('v') => out.push('\u{b}'),
                    Some(d @ '0'..='7') => {
                        let mut v = d.to_digit(8).expect("octal");
                        for _ in 0..2 {
                            match chars.peek().and_then(|c| c.to_digit(8)) {
                                Some(x) => {
                                    v = v * 8 + x;
                                    chars.next();
                                }
                                None => break,
                            }
                        }
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    Some(other) => out.push(other),
                    None => return Err(Error::BadCopyData("line ends in a backslash".into())),
                }
            }
            Ok(Some(out))
        })
        .collect()
}

/// One CSV record: unquoted empty fields (or the NULL string) are NULL, a
/// quoted empty field is the empty string; quoted fields may span lines.
/// A decoded text or CSV record: its fields, the bytes it used, the lines
/// it spans.
type TextRecord = (Vec<Option<String>>, usize, usize);

fn csv_record(buf: &[u8], f: &CopyFormat, at_end: bool) -> Result<Option<TextRecord>> {
    let mut fields = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let (mut quoted, mut in_quotes, mut lines) = (false, false, 1);
    let mut i = 0;
    let finish = |field: &mut Vec<u8>, quoted: bool| -> Result<Option<String>> {
        let s = String::from_utf8(std::mem::take(field)).map_err(|_| Error::BadCopyData("invalid UTF-8".into()))?;
        Ok(if !quoted && s == f.null { None } else { Some(s) })
    };
    while i < buf.len() {
        let b = buf[i];
        if in_quotes {
            if b == f.escape && f.escape != f.quote && buf.get(i + 1) == Some(&f.quote) {
                field.push(f.quote);
                i += 2;
                continue;
            }
            if b == f.quote {
                if f.escape == f.quote && buf.get(i + 1) == Some(&f.quote) {
                    field.push(f.quote);
                    i += 2;
                    continue;
                }
                if i + 1 == buf.len() && !at_end {
                    return Ok(None); // a doubled quote may follow
                }
                in_quotes = false;
                i += 1;
                continue;
            }
            if b == b'\n' {
                lines += 1;
            }
            field.push(b);
            i += 1;
            continue;
        }
        if b == f.quote {
            in_quotes = true;
            quoted = true;
        } else if b == f.delimiter {
            fields.push(finish(&mut field, quoted)?);
            quoted = false;
        } else if b == b'\n' {
            if field.last() == Some(&b'\r') && !quoted {
                field.pop();
            }
            fields.push(finish(&mut field, quoted)?);
            return Ok(Some((fields, i + 1, lines)));
        } else {
            field.push(b);
        }
        i += 1;
    }
    if !at_end {
        return Ok(None);
    }
    if in_quotes {
        return Err(Error::BadCopyData("unterminated CSV quoted field".into()));
    }
    if field.last() == Some(&b'\r') && !quoted {
        field.pop();
    }
    fields.push(finish(&mut field, quoted)?);
    Ok(Some((fields, buf.len(), lines)))
}

/// A JSON-lines row: keys are column names (unknown keys are an error,
/// missing ones NULL).
fn json_row(sink: &mut RowSink, obj: serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let mut fields = vec![ScalarValue::Null; sink.targets.len()];
    for (k, v) in obj {
        let Some(i) = sink.targets.iter().position(|&c| sink.columns[c].name == k) else {
            if crate::catalog::SYSTEM_COLUMNS.contains(&k.as_str()) {
                continue;
            }
            return Err(Error::BadCopyData(format!("JSON key \"{k}\" is not a column of \"{}\"", sink.relation)));
        };
        fields[i] = match v {
            serde_json::Value::Null => ScalarValue::Null,
            serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(b)),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => ScalarValue::Int64(Some(i)),
                (None, Some(f)) => ScalarValue::Float64(Some(f)),
                _ => ScalarValue::Utf8(Some(n.to_string())),
            },
            serde_json::Value::String(s) => ScalarValue::Utf8(Some(s)),
            other => ScalarValue::Utf8(Some(other.to_string())),
        };
    }
    sink.push(fields.into_iter())
}

/// Appends every row of a Parquet file held in `bytes`. Columns are
/// matched by name; system columns (`_offset`, …) in the file are ignored.
pub(crate) fn read_parquet<R>(input: R, sink: &mut RowSink, name: &str) -> Result<()>
where
    R: datafusion::parquet::file::reader::ChunkReader + 'static,
{
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |e: &dyn std::fmt::Display| Error::BadCopyData(format!("{name} is not a readable Parquet file: {e}"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(input).map_err(|e| bad(&e))?;
    let schema = builder.schema().clone();
    for f in schema.fields() {
        let known = sink.targets.iter().any(|&c| sink.columns[c].name == *f.name())
            || crate::catalog::SYSTEM_COLUMNS.contains(&f.name().as_str());
        if !known {
            return Err(Error::BadCopyData(format!(
                "{name} has column \"{}\", which \"{}\" lacks",
                f.name(),
                sink.relation
            )));
        }
    }
    let columns: Vec<Option<usize>> =
        sink.targets.iter().map(|&c| schema.fields().iter().position(|f| *f.name() == sink.columns[c].name)).collect();
    let reader = builder.with_batch_size(8192).build().map_err(|e| bad(&e))?;
    let mut row = 0;
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        sink.push_batch(&batch, &columns).map_err(|e| at(e, "row", row + 1))?;
        row += batch.num_rows();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_keep_quoting_and_wait_for_more() {
        let f = CopyFormat::of(Format::Csv);
        let (v, used, _) = csv_record(b"a,\"\",,\"x,\"\"y\"\n", &f, false).unwrap().unwrap();
        assert_eq!(v, vec![Some("a".into()), Some("".into()), None, Some("x,\"y".into())]);
        assert_eq!(used, 14);
        assert!(csv_record(b"a,\"multi\nline", &f, false).unwrap().is_none());
        let (v, _, lines) = csv_record(b"a,\"multi\nline\"\n", &f, false).unwrap().unwrap();
        assert_eq!((v[1].as_deref(), lines), (Some("multi\nline"), 2));
        assert!(csv_record(b"a,\"open", &f, true).is_err());
    }

    #[test]
    fn text_fields_undo_escapes() {
        let f = CopyFormat::of(Format::Text);
        let v = text_fields("a\\tb\t\\N\tc\\\\d\t\\101", &f).unwrap();
        assert_eq!(v, vec![Some("a\tb".into()), None, Some("c\\d".into()), Some("A".into())]);
    }
}
