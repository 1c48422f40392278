//! Continuous-query statements:
//!
//! ```sql
//! CREATE CONTINUOUS QUERY [IF NOT EXISTS] name
//!   [WITH (start = 'earliest' | 'latest', lateness = '5 seconds')]
//!   AS INSERT INTO sink [(cols)] SELECT …
//! DROP CONTINUOUS QUERY [IF EXISTS] name
//! PAUSE CONTINUOUS QUERY name
//! RESUME CONTINUOUS QUERY name
//! SHOW CONTINUOUS QUERIES
//! ```

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Error, Result};
use crate::sql::duration::parse_duration;
use crate::sql::parser::{expect_end, expect_word, normalize, option_parts, Statement};

/// Where a new continuous query starts reading its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Start {
    /// From the first record still stored (the default).
    Earliest,
    /// From the records appended after the query is created.
    Latest,
}

/// `WITH (…)` of `CREATE CONTINUOUS QUERY`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContinuousOptions {
    pub start: Start,
    /// How far event time may go back before a record counts as late
    /// (windows over an event-time column).
    pub lateness_micros: i64,
}

impl Default for ContinuousOptions {
    fn default() -> Self {
        ContinuousOptions { start: Start::Earliest, lateness_micros: 0 }
    }
}

/// A continuous-query statement.
#[derive(Debug, Clone, PartialEq)]
pub enum ContinuousStatement {
    Create { name: String, if_not_exists: bool, options: ContinuousOptions, body: String },
    Drop { name: String, if_exists: bool },
    Pause { name: String },
    Resume { name: String },
    Show,
}

/// Parses a continuous-query statement whose first words are `words`;
/// `None` if they do not start one. `tokens` are the statement's tokens (the
/// body of CREATE is kept as text, planned when the query starts).
pub(crate) fn parse(words: &[&str], parser: &mut Parser, tokens: &[TokenWithSpan]) -> Result<Option<Statement>> {
    let verb = |parser: &mut Parser, first: &str| -> Result<()> {
        expect_word(parser, first)?;
        expect_word(parser, "CONTINUOUS")?;
        expect_word(parser, "QUERY")
    };
    let stmt = match words {
        ["CREATE", "CONTINUOUS", "QUERY"] => {
            verb(parser, "CREATE")?;
            let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = normalize(&parser.parse_identifier()?);
            let mut options = ContinuousOptions::default();
            if parser.peek_keyword(Keyword::WITH) {
                for opt in parser.parse_options(Keyword::WITH)? {
                    let (key, text, _) = option_parts(opt)?;
                    match key.as_str() {
                        "start" => {
                            options.start = match text.to_ascii_lowercase().as_str() {
                                "earliest" => Start::Earliest,
                                "latest" => Start::Latest,
                                _ => {
                                    return Err(Error::InvalidParameter(format!(
                                        "start must be 'earliest' or 'latest', got {text}"
                                    )))
                                }
                            }
                        }
                        "lateness" => options.lateness_micros = parse_duration(&text)?,
                        other => {
                            return Err(Error::InvalidParameter(format!(
                                "unknown option \"{other}\" (options: start, lateness)"
                            )))
                        }
                    }
                }
            }
            expect_word(parser, "AS")?;
            // The rest of the statement, as written.
            let at = parser.index();
            let body: String = tokens.get(at..).unwrap_or_default().iter().map(|t| t.token.to_string()).collect();
            let body = body.trim().to_string();
            if body.is_empty() {
                return Err(Error::Syntax("CREATE CONTINUOUS QUERY needs AS INSERT INTO … SELECT …".into()));
            }
            ContinuousStatement::Create { name, if_not_exists, options, body }
        }
        ["DROP", "CONTINUOUS", "QUERY"] => {
            verb(parser, "DROP")?;
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = normalize(&parser.parse_identifier()?);
            expect_end(parser)?;
            ContinuousStatement::Drop { name, if_exists }
        }
        ["PAUSE", "CONTINUOUS", "QUERY"] => {
            verb(parser, "PAUSE")?;
            let name = normalize(&parser.parse_identifier()?);
            expect_end(parser)?;
            ContinuousStatement::Pause { name }
        }
        ["RESUME", "CONTINUOUS", "QUERY"] => {
            verb(parser, "RESUME")?;
            let name = normalize(&parser.parse_identifier()?);
            expect_end(parser)?;
            ContinuousStatement::Resume { name }
        }
        ["SHOW", "CONTINUOUS", "QUERIES"] => {
            for w in ["SHOW", "CONTINUOUS", "QUERIES"] {
                expect_word(parser, w)?;
            }
            expect_end(parser)?;
            ContinuousStatement::Show
        }
        _ => return Ok(None),
    };
    Ok(Some(Statement::Continuous(Box::new(stmt))))
}

/// Whether `token` is a word (any case).
pub(crate) fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}
