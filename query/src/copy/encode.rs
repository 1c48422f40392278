//! Encoding rows for COPY TO: Postgres text, CSV and JSON lines (one
//! line per row), and whole Parquet files.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::copy::format::{CopyFormat, Format};
use crate::error::{Error, Result};

/// How CSV cells are written.
pub type CsvOptions = CopyFormat;

/// The text of one non-NULL cell as Postgres would print it, in a form
/// COPY FROM (and INSERT) reads back: `t`/`f`, `\x…` for bytea, ISO
/// timestamps ([`crate::datetime::output`]).
pub fn text_cell(col: &ArrayRef, row: usize) -> Result<String> {
    Ok(match col.data_type() {
        DataType::Boolean => if col.as_boolean().value(row) { "t" } else { "f" }.to_string(),
        DataType::Binary => hex(col.as_binary::<i32>().value(row)),
        DataType::LargeBinary => hex(col.as_binary::<i64>().value(row)),
        DataType::Utf8 => col.as_string::<i32>().value(row).to_string(),
        DataType::Float32 | DataType::Float64 => {
            crate::floats::floats_as_text(&col.slice(row, 1)).as_string::<i32>().value(0).to_string()
        }
        DataType::Timestamp(..) => {
            let text = crate::datetime::timestamps_as_text(&col.slice(row, 1)).map_err(Error::from_arrow)?;
            text.as_string::<i32>().value(0).to_string()
        }
        _ => ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())
            .map_err(Error::from_arrow)?
            .value(row)
            .to_string(),
    })
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("\\x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// The rows of `batch` as lines of `format` (text, CSV or JSON), newlines
/// included. Timestamp columns (and, for text and CSV, float columns) are
/// printed once for the whole batch ([`crate::datetime::timestamps_as_text`],
/// [`crate::floats::floats_as_text`]), not cell by cell.
pub(crate) fn batch_lines(batch: &RecordBatch, f: &CopyFormat) -> Result<Vec<Vec<u8>>> {
    let floats_as_text = matches!(f.format, Format::Text | Format::Csv);
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(..) => crate::datetime::timestamps_as_text(c).map_err(Error::from_arrow),
            DataType::Float32 | DataType::Float64 if floats_as_text => Ok(crate::floats::floats_as_text(c)),
            _ => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    let fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
        .collect();
    let printed = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(Error::from_arrow)?;
    (0..printed.num_rows()).map(|row| row_line(&printed, row, f)).collect()
}

/// One row as a line of `format` (text, CSV or JSON), newline included.
fn row_line(batch: &RecordBatch, row: usize, f: &CopyFormat) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    match f.format {
        Format::Json => {
            let mut obj = serde_json::Map::new();
            for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
                obj.insert(field.name().clone(), json_cell(col, row)?);
            }
            out.extend_from_slice(serde_json::Value::Object(obj).to_string().as_bytes());
        }
        Format::Text | Format::Csv => {
            for (i, col) in batch.columns().iter().enumerate() {
                if i > 0 {
                    out.push(f.delimiter);
                }
                if col.is_null(row) {
                    out.extend_from_slice(f.null.as_bytes());
                    continue;
                }
                let cell = text_cell(col, row)?;
                if f.format == Format::Text {
                    escape_text(&cell, f.delimiter, &mut out);
                } else {
                    quote_csv(&cell, f, &mut out);
                }
            }
        }
        Format::Parquet => return Err(Error::Internal("Parquet is not line-oriented".into())),
    }
    out.push(b'\n');
    Ok(out)
}

/// The header line of CSV or text output.
pub(crate) fn header_line(schema: &SchemaRef, f: &CopyFormat) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if i > 0 {
            out.push(f.delimiter);
        }
        if f.format == Format::Csv {
            quote_csv(field.name(), f, &mut out);
        } else {
            escape_text(field.name(), f.delimiter, &mut out);
        }
    }
    out.push(b'\n');
    out
}

fn json_cell(col: &ArrayRef, row: usize) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    if col.is_null(row) {
        return Ok(J::Null);
    }
    Ok(match col.data_type() {
        DataType::Boolean => J::Bool(col.as_boolean().value(row)),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            J::from(text_cell(col, row)?.parse::<i64>().map_err(|e| Error::Internal(e.to_string()))?)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            J::from(text_cell(col, row)?.parse::<u64>().map_err(|e| Error::Internal(e.to_string()))?)
        }
        DataType::Float32 | DataType::Float64 => {
            let f: f64 =
                text_cell(col, row)?.parse().map_err(|e: std::num::ParseFloatError| Error::Internal(e.to_string()))?;
            serde_json::Number::from_f64(f).map(J::Number).unwrap_or(J::Null)
        }
        _ => J::String(text_cell(col, row)?),
    })
}

fn escape_text(cell: &str, delimiter: u8, out: &mut Vec<u8>) {
    for b in cell.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' if delimiter == b'\t' => out.extend_from_slice(b"\\t"),
            b if b == delimiter => {
                out.push(b'\\');
                out.push(b);
            }
            b => out.push(b),
        }
    }
}

fn quote_csv(cell: &str, f: &CopyFormat, out: &mut Vec<u8>) {
    let needs = cell.is_empty()
        || cell == f.null
        || cell.bytes().any(|b| b == f.delimiter || b == f.quote || b == b'\n' || b == b'\r' || b == f.escape);
    if !needs {
        out.extend_from_slice(cell.as_bytes());
        return;
    }
    out.push(f.quote);
    for b in cell.bytes() {
        if b == f.quote || b == f.escape {
            out.push(f.escape);
        }
        out.push(b);
    }
    out.push(f.quote);
}

/// Writes batches as a file of `f`; returns the rows written. The file
/// appears under its name only when complete (temporary name, sync,
/// rename).
pub(crate) struct FileWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    format: CopyFormat,
    out: Option<Out>,
    rows: usize,
}

enum Out {
    Lines(std::io::BufWriter<std::fs::File>),
    Parquet(Box<datafusion::parquet::arrow::ArrowWriter<std::fs::File>>),
}

impl FileWriter {
    pub(crate) fn create(path: &std::path::Path, format: CopyFormat, schema: SchemaRef) -> Result<FileWriter> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| file_error(path, e))?;
        let out = match format.format {
            Format::Parquet => {
                let w = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)
                    .map_err(|e| Error::FileIo(format!("{}: {e}", path.display())))?;
                Out::Parquet(Box::new(w))
            }
            _ => {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
                if format.header {
                    w.write_all(&header_line(&schema, &format)).map_err(|e| file_error(path, e))?;
                }
                Out::Lines(w)
            }
        };
        Ok(FileWriter { path: path.to_path_buf(), tmp, format, out: Some(out), rows: 0 })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let path = self.path.clone();
        match self.out.as_mut().expect("open") {
            Out::Parquet(w) => w.write(batch).map_err(|e| Error::FileIo(format!("{}: {e}", path.display())))?,
            Out::Lines(w) => {
                for line in batch_lines(batch, &self.format)? {
                    w.write_all(&line).map_err(|e| file_error(&path, e))?;
                }
            }
        }
        self.rows += batch.num_rows();
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<usize> {
        let path = self.path.clone();
        let io = |e: std::io::Error| file_error(&path, e);
        let file = match self.out.take().expect("open") {
            Out::Parquet(w) => w.into_inner().map_err(|e| Error::FileIo(format!("{}: {e}", path.display())))?,
            Out::Lines(w) => w.into_inner().map_err(|e| io(e.into_error()))?,
        };
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(io)?;
        Ok(self.rows)
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

pub(crate) fn file_error(path: &std::path::Path, e: std::io::Error) -> Error {
    let msg = format!("could not open file \"{}\": {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::FileNotFound(msg),
        _ => Error::FileIo(msg),
    }
}
