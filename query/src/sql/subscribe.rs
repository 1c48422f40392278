//! `COPY (SUBSCRIBE …) TO STDOUT`: a live subscription as a query result.
//!
//! ```sql
//! COPY (SUBSCRIBE name [FROM NOW | FROM BEGINNING | FROM OFFSET n])
//!   TO STDOUT [[WITH] (FORMAT text | csv [, HEADER [true | false]])]
//! ```
//!
//! `name` is a stream, or a table (its changelog). Only the form with
//! `SUBSCRIBE` inside the parentheses is parsed here; every other `COPY`
//! goes to its own parser.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Error, Result};
use crate::sql::groups::next_is;
use crate::sql::parser::{expect_end, expect_word, object_name, Statement};

/// Where a subscription starts, in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Records committed after the statement starts (the default).
    #[default]
    Now,
    /// The oldest record retention has kept.
    Beginning,
    /// The record at this offset (or the oldest kept, if it is gone); a
    /// partition not yet that long waits for it.
    Offset(u64),
}

/// The COPY data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyFormat {
    /// Postgres' text format: tab-separated, `\N` for NULL, backslash escapes.
    #[default]
    Text,
    /// Comma-separated, quoted where needed, empty for NULL.
    Csv,
}

/// `COPY (SUBSCRIBE relation FROM …) TO STDOUT WITH (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySubscribe {
    pub relation: String,
    pub from: StartFrom,
    pub format: CopyFormat,
    /// Send the column names as the first line.
    pub header: bool,
}

/// Parses `COPY (SUBSCRIBE …) TO STDOUT` when `words` (the statement's first
/// three tokens) start one; `None` for any other statement.
pub(crate) fn parse(words: &[&str], parser: &mut Parser) -> Result<Option<Statement>> {
    if !matches!(words, ["COPY", "(", "SUBSCRIBE", ..]) {
        return Ok(None);
    }
    expect_word(parser, "COPY")?;
    parser.expect_token(&Token::LParen)?;
    expect_word(parser, "SUBSCRIBE")?;
    let relation = object_name(&parser.parse_object_name(false)?)?;
    let from = if next_is(parser, "FROM") {
        if next_is(parser, "NOW") {
            StartFrom::Now
        } else if next_is(parser, "BEGINNING") {
            StartFrom::Beginning
        } else if next_is(parser, "OFFSET") {
            StartFrom::Offset(offset(parser)?)
        } else {
            return Err(Error::Syntax(format!(
                "expected NOW, BEGINNING or OFFSET after FROM, found {}",
                parser.peek_token().token
            )));
        }
    } else {
        StartFrom::Now
    };
    if next_is(parser, "GROUP") {
        return Err(Error::Syntax(
            "COPY (SUBSCRIBE …) follows a stream without a group; consumer groups use SUBSCRIBE … GROUP and FETCH"
                .into(),
        ));
    }
    parser.expect_token(&Token::RParen)?;
    expect_word(parser, "TO")?;
    if !next_is(parser, "STDOUT") {
        return Err(Error::Unsupported(format!(
            "COPY (SUBSCRIBE …) TO {} (a subscription never ends; it goes TO STDOUT)",
            parser.peek_token().token
        )));
    }
    let mut stmt = CopySubscribe { relation, from, format: CopyFormat::Text, header: false };
    options(parser, &mut stmt)?;
    expect_end(parser)?;
    Ok(Some(Statement::CopySubscribe(stmt)))
}

fn offset(parser: &mut Parser) -> Result<u64> {
    match parser.next_token().token {
        Token::Number(n, _) => n
            .parse::<u64>()
            .map_err(|_| Error::InvalidParameter(format!("FROM OFFSET needs a non-negative integer, got {n}"))),
        Token::Minus => Err(Error::InvalidParameter("FROM OFFSET needs a non-negative integer".into())),
        other => Err(Error::Syntax(format!("expected an offset, found {other}"))),
    }
}

/// `[WITH] (FORMAT text | csv, HEADER [bool])`
fn options(parser: &mut Parser, stmt: &mut CopySubscribe) -> Result<()> {
    let with = parser.parse_keyword(Keyword::WITH);
    if parser.peek_token().token != Token::LParen {
        if with {
            return Err(Error::Syntax(format!("expected ( after WITH, found {}", parser.peek_token().token)));
        }
        return Ok(());
    }
    parser.expect_token(&Token::LParen)?;
    loop {
        let name = parser.parse_identifier()?.value.to_ascii_lowercase();
        match name.as_str() {
            "format" => {
                let value = parser.parse_identifier()?.value.to_ascii_lowercase();
                stmt.format = match value.as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    other => {
                        return Err(Error::InvalidParameter(format!(
                            "COPY (SUBSCRIBE …) format \"{other}\" is not supported (expected text or csv)"
                        )))
                    }
                };
            }
            "header" => {
                stmt.header = match parser.peek_token().token {
                    Token::Comma | Token::RParen => true,
                    _ => boolean(parser)?,
                }
            }
            other => {
                return Err(Error::InvalidParameter(format!(
                    "COPY (SUBSCRIBE …) option \"{other}\" is not supported (expected FORMAT or HEADER)"
                )))
            }
        }
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    Ok(())
}

/// `true | false | on | off | 1 | 0`, as Postgres reads Boolean options.
fn boolean(parser: &mut Parser) -> Result<bool> {
    let token = parser.next_token().token;
    let text = match &token {
        Token::Word(w) => w.value.to_ascii_lowercase(),
        Token::Number(n, _) => n.clone(),
        Token::SingleQuotedString(s) => s.to_ascii_lowercase(),
        other => other.to_string(),
    };
    match text.as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        _ => Err(Error::InvalidParameter(format!("header requires a Boolean value, got {token}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn one(sql: &str) -> Result<CopySubscribe> {
        let mut stmts = crate::sql::parse(sql, &PostgresCompatibilityParser::new())?;
        match stmts.pop() {
            Some(Statement::CopySubscribe(c)) => Ok(c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_every_form() {
        let c = one("COPY (SUBSCRIBE Tasks) TO STDOUT").unwrap();
        assert_eq!(
            c,
            CopySubscribe { relation: "tasks".into(), from: StartFrom::Now, format: CopyFormat::Text, header: false }
        );
        assert_eq!(one("copy (subscribe public.tasks from beginning) to stdout").unwrap().from, StartFrom::Beginning);
        assert_eq!(one("COPY (SUBSCRIBE tasks FROM NOW) TO STDOUT").unwrap().from, StartFrom::Now);
        assert_eq!(one("COPY (SUBSCRIBE tasks FROM OFFSET 42) TO STDOUT;").unwrap().from, StartFrom::Offset(42));
        let c = one("COPY (SUBSCRIBE tasks) TO STDOUT WITH (FORMAT csv, HEADER)").unwrap();
        assert_eq!((c.format, c.header), (CopyFormat::Csv, true));
        let c = one("COPY (SUBSCRIBE tasks) TO STDOUT (FORMAT text, HEADER false)").unwrap();
        assert_eq!((c.format, c.header), (CopyFormat::Text, false));
    }

    #[test]
    fn rejects_bad_forms() {
        assert!(matches!(one("COPY (SUBSCRIBE tasks FROM OFFSET -1) TO STDOUT"), Err(Error::InvalidParameter(_))));
        assert!(matches!(one("COPY (SUBSCRIBE tasks FROM LATER) TO STDOUT"), Err(Error::Syntax(_))));
        assert!(matches!(one("COPY (SUBSCRIBE tasks) TO '/tmp/x'"), Err(Error::Unsupported(_))));
        assert!(matches!(one("COPY (SUBSCRIBE tasks GROUP g) TO STDOUT"), Err(Error::Syntax(_))));
        assert!(matches!(one("COPY (SUBSCRIBE tasks) TO STDOUT (FORMAT binary)"), Err(Error::InvalidParameter(_))));
        assert!(matches!(one("COPY (SUBSCRIBE tasks) TO STDOUT (DELIMITER ';')"), Err(Error::InvalidParameter(_))));
        assert!(matches!(one("COPY (SUBSCRIBE tasks) TO STDOUT extra"), Err(Error::Syntax(_))));
        assert!(matches!(one("COPY (SUBSCRIBE) TO STDOUT"), Err(Error::Syntax(_))));
    }
}
