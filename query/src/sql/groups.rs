//! Consumer-group and work-queue statements:
//!
//! ```sql
//! CREATE GROUP [IF NOT EXISTS] g ON s [WITH (mode = 'subscribe' | 'queue', start = 'earliest' | 'latest',
//!     session_timeout = '10s', max_deliveries = 5, dead_letter = 'name')]
//! DROP GROUP [IF EXISTS] g ON s
//! SUBSCRIBE s GROUP g [MEMBER 'name'] [WITH (...)]
//! UNSUBSCRIBE s GROUP g
//! FETCH [n] FROM s GROUP g [WAIT 'duration']
//! COMMIT OFFSETS FOR s GROUP g [(partition, offset), ...]
//! ALTER GROUP g ON s RESET TO EARLIEST | LATEST | OFFSET n | TIMESTAMP 'ts'
//! CLAIM [n] FROM s GROUP g [LEASE 'duration'] [MEMBER 'name']
//! ACK s GROUP g (partition, offset) [, ...] [MEMBER 'name']
//! NACK s GROUP g (partition, offset) [, ...] [REASON 'text'] [MEMBER 'name']
//! ```
//! Counts, partitions and offsets may be `$n` parameters.

use brikk_storage::{GroupMode, StartAt};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Error, Result};
use crate::sql::duration::parse_duration;
use crate::sql::parser::{expect_end, expect_word, normalize, object_name, option_parts, Statement};

/// An integer argument: a literal or a `$n` parameter (1-based).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    Lit(i64),
    Param(usize),
}

impl Arg {
    /// The value, with `params` bound (`$1` = `params[0]`).
    pub fn value(self, params: &[Option<i64>]) -> Result<i64> {
        match self {
            Arg::Lit(v) => Ok(v),
            Arg::Param(i) => params
                .get(i - 1)
                .copied()
                .flatten()
                .ok_or_else(|| Error::InvalidParameter(format!("parameter ${i} must be a non-null integer"))),
        }
    }
}

/// Options of `CREATE GROUP` and `SUBSCRIBE ... WITH (...)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupOptions {
    pub mode: Option<GroupMode>,
    pub start: Option<StartAt>,
    pub session_timeout_micros: Option<i64>,
    pub max_deliveries: Option<u32>,
    pub dead_letter: Option<String>,
}

/// Where `ALTER GROUP ... RESET TO` moves a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    /// Microseconds since the epoch.
    Timestamp(i64),
}

/// A consumer-group or work-queue statement.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupStatement {
    Create {
        group: String,
        stream: String,
        if_not_exists: bool,
        options: GroupOptions,
    },
    Drop {
        group: String,
        stream: String,
        if_exists: bool,
    },
    Subscribe {
        stream: String,
        group: String,
        member: Option<String>,
        options: GroupOptions,
    },
    Unsubscribe {
        stream: String,
        group: String,
    },
    Fetch {
        count: Arg,
        stream: String,
        group: String,
        wait_micros: Option<i64>,
    },
    CommitOffsets {
        stream: String,
        group: String,
        offsets: Vec<(Arg, Arg)>,
    },
    Reset {
        group: String,
        stream: String,
        to: ResetTo,
    },
    Claim {
        count: Arg,
        stream: String,
        group: String,
        lease_micros: i64,
        member: Option<String>,
    },
    Ack {
        stream: String,
        group: String,
        records: Vec<(Arg, Arg)>,
        member: Option<String>,
        nack: Option<Option<String>>,
    },
}

impl GroupStatement {
    /// The `$n` parameters the statement uses (all integers).
    pub fn param_count(&self) -> usize {
        let max = |args: &mut dyn Iterator<Item = Arg>| {
            args.filter_map(|a| match a {
                Arg::Param(i) => Some(i),
                Arg::Lit(_) => None,
            })
            .max()
            .unwrap_or(0)
        };
        match self {
            GroupStatement::Fetch { count, .. } | GroupStatement::Claim { count, .. } => {
                max(&mut std::iter::once(*count))
            }
            GroupStatement::CommitOffsets { offsets: pairs, .. } | GroupStatement::Ack { records: pairs, .. } => {
                max(&mut pairs.iter().flat_map(|(a, b)| [*a, *b]))
            }
            _ => 0,
        }
    }
}

/// Default rows of `FETCH` and `CLAIM` without a count.
pub const DEFAULT_COUNT: i64 = 1;
/// Default lease of `CLAIM` without `LEASE`.
pub const DEFAULT_LEASE_MICROS: i64 = 30_000_000;

/// Parses a group statement whose first words are `words`; `None` if they
/// do not start one.
pub(crate) fn parse(words: &[&str], parser: &mut Parser) -> Result<Option<Statement>> {
    let stmt = match words {
        ["CREATE", "GROUP", ..] => {
            expect_word(parser, "CREATE")?;
            expect_word(parser, "GROUP")?;
            let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let group = ident(parser)?;
            expect_word(parser, "ON")?;
            let stream = stream_name(parser)?;
            let options = options(parser)?;
            GroupStatement::Create { group, stream, if_not_exists, options }
        }
        ["DROP", "GROUP", ..] => {
            expect_word(parser, "DROP")?;
            expect_word(parser, "GROUP")?;
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let group = ident(parser)?;
            expect_word(parser, "ON")?;
            GroupStatement::Drop { group, stream: stream_name(parser)?, if_exists }
        }
        ["SUBSCRIBE", ..] => {
            expect_word(parser, "SUBSCRIBE")?;
            let (stream, group) = stream_group(parser)?;
            let member = member(parser)?;
            let options = options(parser)?;
            GroupStatement::Subscribe { stream, group, member, options }
        }
        ["UNSUBSCRIBE", ..] => {
            expect_word(parser, "UNSUBSCRIBE")?;
            let (stream, group) = stream_group(parser)?;
            GroupStatement::Unsubscribe { stream, group }
        }
        ["FETCH", ..] => {
            expect_word(parser, "FETCH")?;
            let count = count(parser)?;
            expect_word(parser, "FROM")?;
            let (stream, group) = stream_group(parser)?;
            let wait_micros = if next_is(parser, "WAIT") { Some(duration(parser)?) } else { None };
            GroupStatement::Fetch { count, stream, group, wait_micros }
        }
        ["COMMIT", "OFFSETS", ..] => {
            expect_word(parser, "COMMIT")?;
            expect_word(parser, "OFFSETS")?;
            expect_word(parser, "FOR")?;
            let (stream, group) = stream_group(parser)?;
            let offsets = if parser.peek_token().token == Token::LParen { pairs(parser)? } else { Vec::new() };
            GroupStatement::CommitOffsets { stream, group, offsets }
        }
        ["ALTER", "GROUP", ..] => {
            expect_word(parser, "ALTER")?;
            expect_word(parser, "GROUP")?;
            let group = ident(parser)?;
            expect_word(parser, "ON")?;
            let stream = stream_name(parser)?;
            expect_word(parser, "RESET")?;
            expect_word(parser, "TO")?;
            let to = if next_is(parser, "EARLIEST") {
                ResetTo::Earliest
            } else if next_is(parser, "LATEST") {
                ResetTo::Latest
            } else if next_is(parser, "OFFSET") {
                match arg(parser)? {
                    Arg::Lit(n) if n >= 0 => ResetTo::Offset(n),
                    _ => return Err(Error::InvalidParameter("RESET TO OFFSET needs a non-negative integer".into())),
                }
            } else if next_is(parser, "TIMESTAMP") {
                let text = string(parser)?;
                let nanos = datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(&text)
                    .map_err(|_| Error::InvalidText(format!("invalid input syntax for type timestamp: \"{text}\"")))?;
                ResetTo::Timestamp(nanos.div_euclid(1000))
            } else {
                return Err(Error::Syntax(format!(
                    "expected EARLIEST, LATEST, OFFSET or TIMESTAMP, found {}",
                    parser.peek_token().token
                )));
            };
            GroupStatement::Reset { group, stream, to }
        }
        ["CLAIM", ..] => {
            expect_word(parser, "CLAIM")?;
            let count = count(parser)?;
            expect_word(parser, "FROM")?;
            let (stream, group) = stream_group(parser)?;
            let mut lease_micros = DEFAULT_LEASE_MICROS;
            let mut member_name = None;
            loop {
                if next_is(parser, "LEASE") {
                    lease_micros = duration(parser)?;
                } else if let Some(m) = member(parser)? {
                    member_name = Some(m);
                } else {
                    break;
                }
            }
            if lease_micros <= 0 {
                return Err(Error::InvalidParameter("LEASE must be a positive duration".into()));
            }
            GroupStatement::Claim { count, stream, group, lease_micros, member: member_name }
        }
        [w @ ("ACK" | "NACK"), ..] => {
            let nack = *w == "NACK";
            parser.next_token();
            let (stream, group) = stream_group(parser)?;
            let records = pairs(parser)?;
            let mut reason = None;
            let mut member_name = None;
            loop {
                if nack && next_is(parser, "REASON") {
                    reason = Some(string(parser)?);
                } else if let Some(m) = member(parser)? {
                    member_name = Some(m);
                } else {
                    break;
                }
            }
            GroupStatement::Ack { stream, group, records, member: member_name, nack: nack.then_some(reason) }
        }
        _ => return Ok(None),
    };
    expect_end(parser)?;
    Ok(Some(Statement::Group(Box::new(stmt))))
}

pub(crate) fn next_is(parser: &mut Parser, word: &str) -> bool {
    match &parser.peek_token().token {
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) => {
            parser.next_token();
            true
        }
        _ => false,
    }
}

fn ident(parser: &mut Parser) -> Result<String> {
    Ok(normalize(&parser.parse_identifier()?))
}

fn stream_name(parser: &mut Parser) -> Result<String> {
    object_name(&parser.parse_object_name(false)?)
}

/// `s GROUP g`
fn stream_group(parser: &mut Parser) -> Result<(String, String)> {
    let stream = stream_name(parser)?;
    expect_word(parser, "GROUP")?;
    Ok((stream, ident(parser)?))
}

fn member(parser: &mut Parser) -> Result<Option<String>> {
    if !next_is(parser, "MEMBER") {
        return Ok(None);
    }
    let name = string(parser)?;
    if name.is_empty() || name.len() > 128 {
        return Err(Error::InvalidParameter("MEMBER name must be 1 to 128 characters".into()));
    }
    Ok(Some(name))
}

fn string(parser: &mut Parser) -> Result<String> {
    let t = parser.next_token();
    match t.token {
        Token::SingleQuotedString(s) => Ok(s),
        other => Err(Error::Syntax(format!("expected a quoted string, found {other}"))),
    }
}

fn duration(parser: &mut Parser) -> Result<i64> {
    parse_duration(&string(parser)?)
}

fn arg(parser: &mut Parser) -> Result<Arg> {
    let t = parser.next_token();
    let neg = t.token == Token::Minus;
    let t = if neg { parser.next_token() } else { t };
    match t.token {
        Token::Number(n, _) => {
            let v: i64 = n.parse().map_err(|_| Error::InvalidParameter(format!("expected an integer, found {n}")))?;
            Ok(Arg::Lit(if neg { -v } else { v }))
        }
        Token::Placeholder(p) if !neg => p
            .strip_prefix('$')
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i >= 1)
            .map(Arg::Param)
            .ok_or_else(|| Error::Syntax(format!("invalid parameter {p}"))),
        other => Err(Error::Syntax(format!("expected an integer, found {other}"))),
    }
}

/// An optional count before FROM.
fn count(parser: &mut Parser) -> Result<Arg> {
    match parser.peek_token().token {
        Token::Number(..) | Token::Placeholder(_) | Token::Minus => arg(parser),
        _ => Ok(Arg::Lit(DEFAULT_COUNT)),
    }
}

/// `(p, o) [, (p, o) ...]`
fn pairs(parser: &mut Parser) -> Result<Vec<(Arg, Arg)>> {
    let mut out = Vec::new();
    loop {
        parser.expect_token(&Token::LParen)?;
        let p = arg(parser)?;
        parser.expect_token(&Token::Comma)?;
        let o = arg(parser)?;
        parser.expect_token(&Token::RParen)?;
        out.push((p, o));
        if !parser.consume_token(&Token::Comma) {
            return Ok(out);
        }
    }
}

fn options(parser: &mut Parser) -> Result<GroupOptions> {
    let mut out = GroupOptions::default();
    if parser.peek_token().token == Token::EOF {
        return Ok(out);
    }
    for opt in parser.parse_options(Keyword::WITH)? {
        let (name, text, _) = option_parts(opt)?;
        let lower = text.to_ascii_lowercase();
        match name.as_str() {
            "mode" => {
                out.mode = Some(match lower.as_str() {
                    "subscribe" => GroupMode::Subscribe,
                    "queue" => GroupMode::Queue,
                    _ => {
                        return Err(Error::InvalidParameter(format!("mode must be 'subscribe' or 'queue', got {text}")))
                    }
                })
            }
            "start" => {
                out.start = Some(match lower.as_str() {
                    "earliest" => StartAt::Earliest,
                    "latest" => StartAt::Latest,
                    _ => {
                        return Err(Error::InvalidParameter(format!(
                            "start must be 'earliest' or 'latest', got {text}"
                        )))
                    }
                })
            }
            "session_timeout" => out.session_timeout_micros = Some(parse_duration(&text)?),
            "max_deliveries" => {
                out.max_deliveries = Some(text.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Error::InvalidParameter(format!("max_deliveries must be a positive integer, got {text}"))
                })?)
            }
            "dead_letter" => out.dead_letter = Some(lower),
            other => {
                return Err(Error::InvalidParameter(format!(
                    "unknown group option \"{other}\" (expected mode, start, session_timeout, max_deliveries or \
                     dead_letter)"
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn one(sql: &str) -> Result<GroupStatement> {
        let mut stmts = crate::sql::parse(sql, &PostgresCompatibilityParser::new())?;
        match stmts.pop() {
            Some(Statement::Group(g)) => Ok(*g),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            one("FETCH 10 FROM tasks GROUP workers WAIT '5s'").unwrap(),
            GroupStatement::Fetch {
                count: Arg::Lit(10),
                stream: "tasks".into(),
                group: "workers".into(),
                wait_micros: Some(5_000_000)
            }
        );
        assert!(matches!(one("fetch from Tasks group W").unwrap(),
            GroupStatement::Fetch { count: Arg::Lit(1), stream, group, wait_micros: None } if stream == "tasks" && group == "w"));
        assert!(matches!(one("SUBSCRIBE tasks GROUP workers MEMBER 'a-1' WITH (session_timeout = '3s')").unwrap(),
            GroupStatement::Subscribe { member: Some(m), options, .. } if m == "a-1" && options.session_timeout_micros == Some(3_000_000)));
        assert!(matches!(one("COMMIT OFFSETS FOR tasks GROUP workers (3, 1041), ($1, $2)").unwrap(),
            GroupStatement::CommitOffsets { offsets, .. } if offsets == vec![(Arg::Lit(3), Arg::Lit(1041)), (Arg::Param(1), Arg::Param(2))]));
        assert!(matches!(
            one("ALTER GROUP workers ON tasks RESET TO OFFSET 5").unwrap(),
            GroupStatement::Reset { to: ResetTo::Offset(5), .. }
        ));
        assert!(matches!(
            one("ALTER GROUP workers ON tasks RESET TO TIMESTAMP '2026-01-01 00:00:00'").unwrap(),
            GroupStatement::Reset { to: ResetTo::Timestamp(1_767_225_600_000_000), .. }
        ));
        assert!(matches!(
            one("CLAIM 5 FROM tasks GROUP solvers LEASE '30s' MEMBER 's1'").unwrap(),
            GroupStatement::Claim { lease_micros: 30_000_000, member: Some(_), .. }
        ));
        assert!(matches!(one("NACK tasks GROUP solvers (3, 1041) REASON 'bad input'").unwrap(),
            GroupStatement::Ack { nack: Some(Some(r)), .. } if r == "bad input"));
        assert!(matches!(one("ACK tasks GROUP solvers (3, 1041), (4, 2)").unwrap(),
            GroupStatement::Ack { nack: None, records, .. } if records.len() == 2));
        assert!(
            matches!(one("CREATE GROUP IF NOT EXISTS solvers ON tasks WITH (mode = 'queue', max_deliveries = 3)").unwrap(),
            GroupStatement::Create { if_not_exists: true, options, .. } if options.mode == Some(GroupMode::Queue) && options.max_deliveries == Some(3))
        );
    }

    #[test]
    fn rejects_bad_forms() {
        // Without GROUP, FETCH reads a cursor (crate::session::cursors).
        let cursor = crate::sql::parse("FETCH 10 FROM tasks", &PostgresCompatibilityParser::new()).unwrap();
        assert!(
            matches!(cursor.as_slice(), [Statement::Sql(s)] if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Fetch { .. }))
        );
        assert!(matches!(one("ACK tasks GROUP g"), Err(Error::Syntax(_))));
        assert!(matches!(one("CLAIM 1 FROM t GROUP g LEASE '0s'"), Err(Error::InvalidParameter(_))));
        assert!(matches!(one("CREATE GROUP g ON t WITH (mode = 'x')"), Err(Error::InvalidParameter(_))));
        assert!(matches!(one("ALTER GROUP g ON t RESET TO NOWHERE"), Err(Error::Syntax(_))));
    }
}
