//! COPY formats and their options.

use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::error::{Error, Result};

/// A file or wire format of COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Postgres' text format: tab-separated, `\N` for NULL, backslash escapes.
    Text,
    /// Comma-separated values; an unquoted empty field is NULL.
    Csv,
    /// One JSON object per line, keys are column names.
    Json,
    /// Apache Parquet (files only, or a whole file through STDIN).
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Parquet => "parquet",
        }
    }

    /// The format a file name implies, if its extension names one.
    pub fn of_path(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
        Some(match ext.as_str() {
            "parquet" | "pq" => Format::Parquet,
            "csv" => Format::Csv,
            "json" | "jsonl" | "ndjson" => Format::Json,
            "txt" | "tsv" | "tab" => Format::Text,
            _ => return None,
        })
    }

    fn parse(name: &str) -> Result<Format> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "text" => Format::Text,
            "csv" => Format::Csv,
            "json" | "jsonl" | "ndjson" => Format::Json,
            "parquet" => Format::Parquet,
            other => {
                return Err(Error::InvalidParameter(format!(
                    "COPY format \"{other}\" not recognized (text, csv, json, parquet)"
                )))
            }
        })
    }
}

/// A format with its options.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFormat {
    pub format: Format,
    /// CSV: the first line names the columns (skipped on input).
    pub header: bool,
    pub delimiter: u8,
    /// How NULL is written (text: `\N`, CSV: empty).
    pub null: String,
    pub quote: u8,
    pub escape: u8,
}

impl CopyFormat {
    pub fn of(format: Format) -> CopyFormat {
        CopyFormat {
            format,
            header: false,
            delimiter: if format == Format::Csv { b',' } else { b'\t' },
            null: if format == Format::Csv { String::new() } else { "\\N".into() },
            quote: b'"',
            escape: b'"',
        }
    }

    /// The format `COPY` asks for: the FORMAT option (or a legacy `CSV`,
    /// `JSON`, `BINARY` keyword), else the extension of `path`, else text
    /// for STDIN/STDOUT. A file whose format cannot be told is an error.
    pub fn from_options(options: &[CopyOption], legacy: &[CopyLegacyOption], path: Option<&str>) -> Result<CopyFormat> {
        let mut format = None;
        for o in options {
            if let CopyOption::Format(name) = o {
                format = Some(Format::parse(&name.value)?);
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Csv(_) => format = Some(Format::Csv),
                CopyLegacyOption::Json(_) => format = Some(Format::Json),
                CopyLegacyOption::Binary => {
                    return Err(Error::Unsupported("COPY BINARY (use FORMAT parquet, csv, json or text)".into()))
                }
                _ => {}
            }
        }
        let format = match (format, path) {
            (Some(f), _) => f,
            (None, None) => Format::Text,
            (None, Some(p)) => Format::of_path(p).ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "cannot tell the format of \"{p}\" from its name: add (FORMAT text | csv | json | parquet)"
                ))
            })?,
        };
        let mut f = CopyFormat::of(format);
        let one_byte = |c: char, what: &str| -> Result<u8> {
            u8::try_from(c as u32)
                .ok()
                .filter(|b| b.is_ascii())
                .ok_or_else(|| Error::InvalidParameter(format!("COPY {what} must be a single one-byte character")))
        };
        for o in options {
            match o {
                CopyOption::Format(_) => {}
                CopyOption::Header(h) => f.header = *h,
                CopyOption::Delimiter(c) => f.delimiter = one_byte(*c, "delimiter")?,
                CopyOption::Null(s) => f.null = s.clone(),
                CopyOption::Quote(c) => f.quote = one_byte(*c, "quote")?,
                CopyOption::Escape(c) => f.escape = one_byte(*c, "escape")?,
                CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(Error::Unsupported(format!("COPY option {other}"))),
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Csv(csv) => {
                    for c in csv {
                        match c {
                            CopyLegacyCsvOption::Header => f.header = true,
                            CopyLegacyCsvOption::Quote(q) => f.quote = one_byte(*q, "quote")?,
                            CopyLegacyCsvOption::Escape(e) => f.escape = one_byte(*e, "escape")?,
                            other => return Err(Error::Unsupported(format!("COPY option {other}"))),
                        }
                    }
                }
                CopyLegacyOption::Header => f.header = true,
                CopyLegacyOption::Delimiter(c) => f.delimiter = one_byte(*c, "delimiter")?,
                CopyLegacyOption::Null(s) => f.null = s.clone(),
                CopyLegacyOption::Json(_) => {}
                other => return Err(Error::Unsupported(format!("COPY option {other}"))),
            }
        }
        if f.header && !matches!(f.format, Format::Csv | Format::Text) {
            return Err(Error::InvalidParameter(format!("HEADER is for csv and text, not {}", f.format.name())));
        }
        Ok(f)
    }
}
