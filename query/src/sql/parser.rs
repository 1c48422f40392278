//! Splitting a query string and parsing Brikk's own statements.
//!
//! A query string is tokenized once and cut at top-level semicolons (a
//! semicolon inside a string or comment is part of its token). Each piece is
//! then either one of Brikk's statements, parsed here with sqlparser's
//! building blocks, or SQL for DataFusion. A catalog query (one that names
//! `pg_…` or `information_schema`: psql's and drivers') goes whole to
//! `datafusion-pg-catalog`'s Postgres-compatibility parser, which matches
//! its known catalog queries and rewrites the rest; a user's statement is
//! parsed here and gets that parser's rewrite rules but for three written for
//! catalog queries, which would change what it means (see `user_rules`). An
//! `INSERT` without a `SELECT` (a script's bulk load) parses from the
//! piece's tokens (see `parse_insert`).

use brikk_storage::{ArchiveDef, ColumnDef, MAX_PARTITIONS};
use datafusion::sql::sqlparser::ast::{self, ColumnOption, Expr, SqlOption, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::catalog::SYSTEM_COLUMNS;
use crate::error::{Error, Result};
use crate::sql::duration::{parse_duration, parse_size};
use crate::types::column_type;

/// One statement of a query string.
#[derive(Debug, Clone)]
pub enum Statement {
    CreateStream(CreateStream),
    DropStream {
        names: Vec<String>,
        if_exists: bool,
        /// `CASCADE`: drop the views that read the streams too.
        cascade: bool,
    },
    ShowStreams,
    /// A consumer-group or work-queue statement (see [`crate::sql::groups`]).
    Group(Box<crate::sql::groups::GroupStatement>),
    /// `COPY (SUBSCRIBE …) TO STDOUT`, a live subscription (see
    /// [`crate::sql::subscribe`]).
    CopySubscribe(crate::sql::subscribe::CopySubscribe),
    /// A continuous-query statement (see [`crate::sql::continuous`]).
    Continuous(Box<crate::sql::continuous::ContinuousStatement>),
    /// `MOVE [direction] [FROM | IN] cursor`: held as the `FETCH` of the
    /// same shape, whose rows are skipped (see [`crate::session::cursors`]).
    MoveCursor(Box<ast::Statement>),
    /// Anything else: standard SQL for DataFusion or the session.
    Sql(Box<ast::Statement>),
}

/// `CREATE STREAM name (cols) WITH (partitions = n, key = 'col', retention = '7 days',
/// retention_bytes = '10 GB', archive = true, segment_rows = n, segment_bytes = '64 MB',
/// segment_age = '1 hour')`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateStream {
    pub name: String,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    pub partitions: u32,
    pub key: Option<String>,
    pub retention_micros: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub archive: Option<ArchiveDef>,
}

/// Default partition count of `CREATE STREAM` without `partitions`.
pub const DEFAULT_PARTITIONS: u32 = 1;

/// Parses a query string into statements. An empty string (or only
/// semicolons and comments) gives no statements.
pub fn parse(sql: &str, compat: &PostgresCompatibilityParser) -> Result<Vec<Statement>> {
    // About one token per 8 bytes of a bulk INSERT's text: reserving it
    // spares the copies of a doubling vector, which a 1,000-row INSERT felt.
    let mut tokens = Vec::with_capacity(sql.len() / 8 + 16);
    Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location_into_buf(&mut tokens)?;
    let lines = LineIndex::new(sql);
    // Cut at the semicolons, last piece first, so that each piece's tokens
    // move out of the vector once (and a lone statement's not at all).
    let mut pieces = Vec::new();
    let mut end = sql.len(); // byte offset where the current last piece ends
    while let Some(i) = tokens.iter().rposition(|t| t.token == Token::SemiColon) {
        let at = lines.byte_offset(tokens[i].span.start);
        let piece = tokens.split_off(i + 1);
        tokens.truncate(i);
        pieces.push((at + 1..end, piece));
        end = at;
    }
    pieces.push((0..end, tokens));
    let mut out = Vec::new();
    for (text, piece) in pieces.into_iter().rev() {
        if let Some(stmt) = parse_piece(&sql[text], piece, compat)? {
            out.push(stmt);
        }
    }
    Ok(out)
}

fn parse_piece(
    text: &str,
    tokens: Vec<TokenWithSpan>,
    compat: &PostgresCompatibilityParser,
) -> Result<Option<Statement>> {
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .take(3)
        .map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            other => other.to_string(),
        })
        .collect();
    if words.is_empty() {
        return Ok(None);
    }
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    // `t AS OF OFFSET n` is Brikk's: rewritten to a table function first.
    let as_of = if mentions(&tokens, Keyword::OF) { crate::tables::history::rewrite_as_of(&tokens) } else { None };
    let plain_insert = w[0] == "INSERT" && as_of.is_none() && !mentions(&tokens, Keyword::SELECT);
    let says_current_user = mentions(&tokens, Keyword::CURRENT_USER) && !mentions(&tokens, Keyword::SESSION_USER);
    let text = as_of.as_deref().unwrap_or(text);
    let catalog = tokens.iter().any(|t| matches!(&t.token, Token::Word(w) if is_catalog_word(&w.value)));
    let body_tokens = if w.get(1) == Some(&"CONTINUOUS") { tokens.clone() } else { Vec::new() };
    // FETCH … GROUP reads a consumer group; any other FETCH, a cursor.
    // MOVE is parsed as the FETCH it skips over.
    let is_move = w[0] == "MOVE";
    let cursor_fetch = (w[0] == "FETCH" || is_move) && !mentions(&tokens, Keyword::GROUP);
    let mut tokens = tokens;
    if is_move {
        if let Some(t) = tokens.iter_mut().find(|t| !matches!(t.token, Token::Whitespace(_))) {
            t.token = Token::make_keyword("FETCH");
        }
    }
    // `ALTER STREAM` is `ALTER TABLE` of a stream; `ALTER VIEW … RENAME
    // TO`, which sqlparser does not read, is `ALTER TABLE … RENAME TO`.
    let alter_stream = w.starts_with(&["ALTER", "STREAM"])
        || (w.starts_with(&["ALTER", "VIEW"]) && mentions(&tokens, Keyword::RENAME));
    if alter_stream {
        if let Some(t) = tokens.iter_mut().filter(|t| !matches!(t.token, Token::Whitespace(_))).nth(1) {
            t.token = Token::make_keyword("TABLE");
        }
    }
    // A bulk INSERT of literals: its rows after the first are read here.
    let (tokens, literal_rows) = match plain_insert {
        true => crate::sql::literal_rows::split(tokens),
        false => (tokens, Vec::new()),
    };
    let mut parser = Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(tokens);
    if cursor_fetch || alter_stream {
        let stmt = Box::new(parser.parse_statement()?);
        expect_end(&mut parser)?;
        return Ok(Some(if is_move { Statement::MoveCursor(stmt) } else { Statement::Sql(stmt) }));
    }
    if let Some(stmt) = crate::sql::continuous::parse(w.as_slice(), &mut parser, &body_tokens)? {
        return Ok(Some(stmt));
    }
    if let Some(stmt) = crate::sql::groups::parse(w.as_slice(), &mut parser)? {
        return Ok(Some(stmt));
    }
    if let Some(stmt) = crate::sql::subscribe::parse(w.as_slice(), &mut parser)? {
        return Ok(Some(stmt));
    }
    let stmt = match w.as_slice() {
        ["CREATE", "STREAM", ..] => Statement::CreateStream(parse_create_stream(&mut parser)?),
        ["DROP", "STREAM", ..] => parse_drop_stream(&mut parser)?,
        ["SHOW", "STREAMS", ..] => {
            parser.next_token();
            parser.next_token();
            expect_end(&mut parser)?;
            Statement::ShowStreams
        }
        // Postgres's spelling, which sqlparser does not take.
        ["RESET", "TIME", "ZONE"] => {
            (0..3).for_each(|_| drop(parser.next_token()));
            expect_end(&mut parser)?;
            let name = ast::ObjectName::from(vec![ast::Ident::new("timezone")]);
            Statement::Sql(Box::new(ast::Statement::Reset(ast::ResetStatement {
                reset: ast::Reset::ConfigurationParameter(name),
            })))
        }
        ["INSERT", ..] if plain_insert => Statement::Sql(Box::new(parse_insert(&mut parser, literal_rows)?)),
        _ => {
            // Catalog queries (psql's and drivers') get the compatibility
            // parser, its patterns and all its rules; a user's statement
            // gets Brikk's set of its rules (see `user_rules`).
            let own = match is_psql_describe_columns(text) {
                true => psql_describe_columns(text),
                false if catalog || w[0] == "ABORT" => None,
                false => match one_statement(text)? {
                    Some(stmt) => Some(stmt),
                    None => return Ok(None),
                },
            };
            let mut stmts = match own {
                Some(stmt) => vec![user_rules().iter().fold(stmt, |s, rule| rule.rewrite(s))],
                None => match without_domain_base_lookup(text) {
                    Some(text) => compat.parse(&text)?,
                    None => compat.parse(text)?,
                },
            };
            match stmts.len() {
                0 => return Ok(None),
                1 => {
                    let mut stmt = stmts.remove(0);
                    if says_current_user {
                        name_current_user(&mut stmt);
                    }
                    crate::sql::pg_compat::check(&stmt)?;
                    crate::sql::pg_compat::rewrite(&mut stmt);
                    Statement::Sql(Box::new(stmt))
                }
                _ => return Err(Error::Syntax("expected one statement".into())),
            }
        }
    };
    Ok(Some(stmt))
}

/// Whether a word names the system catalog (`pg_class`, `pg_catalog`,
/// `information_schema`): such queries come from psql and drivers, and get
/// every rewrite of the compatibility parser.
fn is_catalog_word(w: &str) -> bool {
    w.len() > 3 && (w[..3].eq_ignore_ascii_case("pg_") || w.eq_ignore_ascii_case("information_schema"))
}

/// `text` parsed, if it is one statement with a scalar subquery as an item
/// of a select list (`SELECT a.id, (SELECT count(*) FROM b WHERE b.a =
/// a.id) FROM a`).
///
/// The compatibility parser replaces such a subquery with NULL when it is
/// correlated (psql's catalog queries have ones DataFusion cannot plan), and
/// limits an uncorrelated one to a row; a user's query gets neither: it is
/// answered by DataFusion as written, or refused with its error, never
/// answered with NULLs.
fn with_select_list_subquery(text: &str) -> Option<ast::Statement> {
    let stmt = one_statement(text).ok().flatten()?;
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, q: &ast::Query) -> std::ops::ControlFlow<()> {
            let ast::SetExpr::Select(select) = q.body.as_ref() else { return std::ops::ControlFlow::Continue(()) };
            let subquery = select.projection.iter().any(|item| {
                matches!(
                    item,
                    ast::SelectItem::UnnamedExpr(Expr::Subquery(_))
                        | ast::SelectItem::ExprWithAlias { expr: Expr::Subquery(_), .. }
                )
            });
            if subquery {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        }
    }
    stmt.visit(&mut Find).is_break().then_some(stmt)
}

/// `text` parsed: its one statement, or `None` for none (only comments);
/// more than one is a syntax error.
fn one_statement(text: &str) -> Result<Option<ast::Statement>> {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, text)?;
    match stmts.len() {
        0 | 1 => Ok(stmts.pop()),
        _ => Err(Error::Syntax("expected one statement".into())),
    }
}

/// asyncpg's type introspection with its lookups of a domain's base type
/// replaced by NULL, if `text` has them. Each is a recursive CTE correlated
/// to the `pg_type` row being described, which DataFusion cannot run, in a
/// `CASE WHEN t.typtype = 'd'` branch that never applies: Brikk has no
/// domains. Without this, asyncpg cannot learn any type it lacks a codec
/// for (the array types of its parameters, among others).
fn without_domain_base_lookup(text: &str) -> Option<String> {
    if !text.contains("typebases") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize().ok()?;
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.value.eq_ignore_ascii_case(w));
    let solid: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i], Token::Whitespace(_))).collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut replaced = false;
    while i < tokens.len() {
        let at = solid.iter().position(|&j| j == i);
        let starts = at.is_some_and(|k| {
            let t = |n: usize| solid.get(k + n).map(|&j| &tokens[j]);
            matches!(t(0), Some(Token::LParen))
                && t(1).is_some_and(|x| word(x, "WITH"))
                && t(2).is_some_and(|x| word(x, "RECURSIVE"))
                && t(3).is_some_and(|x| word(x, "typebases"))
        });
        if starts {
            let mut depth = 0usize;
            let end = (i..tokens.len()).find(|&j| {
                match tokens[j] {
                    Token::LParen => depth += 1,
                    Token::RParen => depth -= 1,
                    _ => {}
                }
                depth == 0
            })?;
            out.push_str("NULL");
            replaced = true;
            i = end + 1;
            continue;
        }
        out.push_str(&tokens[i].to_string());
        i += 1;
    }
    replaced.then_some(out)
}

/// Whether `text` is psql's query for the columns of `\d name`.
fn is_psql_describe_columns(text: &str) -> bool {
    text.contains("pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)") && text.contains("FROM pg_catalog.pg_attribute a")
}

/// psql's `\d` column query, parsed for Brikk's rules rather than the
/// compatibility parser's, which would replace its column-default subquery
/// with NULL. That subquery stays (and is aggregated by
/// [`crate::sql::pg_compat`], so DataFusion can decorrelate it); the other
/// select-list subqueries (collation: Brikk has none) become NULL.
fn psql_describe_columns(text: &str) -> Option<ast::Statement> {
    let mut stmt = with_select_list_subquery(text)?;
    let ast::Statement::Query(q) = &mut stmt else { return None };
    let ast::SetExpr::Select(select) = q.body.as_mut() else { return None };
    for item in &mut select.projection {
        let (ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. }) = item else { continue };
        if let Expr::Subquery(sub) = e {
            if !sub.to_string().contains("pg_attrdef") {
                *e = Expr::Value(Value::Null.into());
            }
        }
    }
    Some(stmt)
}

/// The compatibility parser's rewrite rules, in its order, but for three
/// written for catalog queries that would change what a user's statement
/// means: the one that replaces a correlated scalar subquery of a select
/// list with NULL (see [`with_select_list_subquery`]); the one that
/// qualifies the bare columns of WHERE and ORDER BY with the relation of a
/// `t.*` (`SELECT a.*, b.y FROM a AS a JOIN b AS b … WHERE y > 1` would
/// read `a.y`); and the one that splits array literals at every comma
/// (`'{"a,b",c}'::text[]`), which [`crate::sql::pg_compat`] reads as
/// Postgres does instead.
fn user_rules() -> &'static [std::sync::Arc<dyn datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule>] {
    use datafusion_pg_catalog::sql::rules::*;
    use std::sync::{Arc, LazyLock};
    static RULES: LazyLock<Vec<Arc<dyn SqlStatementRewriteRule>>> = LazyLock::new(|| {
        vec![
            Arc::new(AliasDuplicatedProjectionRewrite),
            Arc::new(RewriteArrayAnyAllOperation),
            Arc::new(PrependUnqualifiedPgTableName),
            Arc::new(StripCallableQualifier),
            Arc::new(CurrentUserVariableToSessionUserFunctionCall),
            Arc::new(StripCollate),
            Arc::new(RewritePgCatalogOperator),
            Arc::new(RewriteRegCastToSubquery::new()),
            Arc::new(FixVersionColumnName),
        ]
    });
    &RULES
}

/// Whether keyword `kw` occurs among `tokens`.
fn mentions(tokens: &[TokenWithSpan], kw: Keyword) -> bool {
    tokens.iter().any(|t| matches!(&t.token, Token::Word(w) if w.keyword == kw))
}

/// Names the select-list items `current_user` as Postgres names them.
/// The compatibility parser renames `current_user` to `session_user` (the
/// function DataFusion has) before Brikk names columns; called only when
/// the text says `current_user` and not `session_user`, so every unaliased
/// `session_user` item of the outer query was a `current_user`.
fn name_current_user(stmt: &mut ast::Statement) {
    crate::sql::pg_compat::name_select_items(stmt, |e| {
        let ast::Expr::Function(f) = e else { return None };
        let session_user = matches!(f.args, ast::FunctionArguments::None)
            && matches!(f.name.0.as_slice(), [ast::ObjectNamePart::Identifier(i)] if i.value.eq_ignore_ascii_case("session_user"));
        session_user.then(|| "current_user".to_string())
    });
}

/// Parses an `INSERT` without a `SELECT` in it (`INSERT … VALUES`, the bulk
/// load of psql scripts) from the piece's own tokens.
///
/// A user's statement gets [`user_rules`], a dozen walks over the whole
/// tree. Those rules change identifiers, casts, function calls, operators
/// and subqueries, never a literal, so rows of literals and parameters are
/// taken out while they (and Brikk's own rewrites) run. A 1,000-row INSERT
/// spent most of its time in those walks.
/// An INSERT without a SELECT; `more_rows` follow the rows of its VALUES
/// (see [`crate::sql::literal_rows`]).
fn parse_insert(parser: &mut Parser, more_rows: Vec<crate::sql::literal_rows::Row>) -> Result<ast::Statement> {
    let mut stmt = parser.parse_statement()?;
    expect_end(parser)?;
    if !more_rows.is_empty() {
        let ast::Statement::Insert(insert) = &mut stmt else {
            return Err(Error::Internal("literal rows for a statement that is not an INSERT".into()));
        };
        let Some(ast::SetExpr::Values(values)) = insert.source.as_deref_mut().map(|q| q.body.as_mut()) else {
            return Err(Error::Internal("literal rows for an INSERT without VALUES".into()));
        };
        values.rows.extend(more_rows);
    }
    with_literal_rows_aside(stmt, |s| {
        let mut s = user_rules().iter().fold(s, |s, rule| rule.rewrite(s));
        crate::sql::pg_compat::rewrite(&mut s);
        s
    })
}

/// Runs `f` on `stmt` with the rows of its `VALUES` taken out when every
/// value is a literal or a parameter, then puts them back.
fn with_literal_rows_aside(
    mut stmt: ast::Statement,
    f: impl FnOnce(ast::Statement) -> ast::Statement,
) -> Result<ast::Statement> {
    fn values(stmt: &mut ast::Statement) -> Option<&mut ast::Values> {
        let ast::Statement::Insert(insert) = stmt else { return None };
        match insert.source.as_deref_mut()?.body.as_mut() {
            ast::SetExpr::Values(v) => Some(v),
            _ => None,
        }
    }
    fn literal(e: &Expr) -> bool {
        match e {
            Expr::Value(_) => true,
            Expr::UnaryOp { op: ast::UnaryOperator::Minus | ast::UnaryOperator::Plus, expr } => {
                matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Number(..)))
            }
            _ => false,
        }
    }
    let rows = match values(&mut stmt) {
        Some(v) if v.rows.iter().all(|r| r.content.iter().all(literal)) => std::mem::take(&mut v.rows),
        _ => return Ok(f(stmt)),
    };
    let mut stmt = f(stmt);
    let v = values(&mut stmt).ok_or_else(|| Error::Internal("a rewrite rule replaced an INSERT's VALUES".into()))?;
    v.rows = rows;
    Ok(stmt)
}

pub(crate) fn expect_end(parser: &mut Parser) -> Result<()> {
    let t = parser.next_token();
    if t.token != Token::EOF {
        return Err(Error::Syntax(format!("unexpected {} at end of statement", t.token)));
    }
    Ok(())
}

pub(crate) fn expect_word(parser: &mut Parser, word: &str) -> Result<()> {
    let t = parser.next_token();
    match &t.token {
        Token::Word(w) if w.value.eq_ignore_ascii_case(word) => Ok(()),
        other => Err(Error::Syntax(format!("expected {word}, found {other}"))),
    }
}

/// Lowercases unquoted identifiers, as Postgres does.
pub fn normalize(ident: &ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// Postgres' reserved key words: an identifier spelled like one is quoted.
const RESERVED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// `name` as a quoted identifier (`"Board"`, `"a""b"`): it reads back as
/// exactly `name`, whatever its case or characters.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as Postgres writes an identifier in text it generates
/// (`pg_get_indexdef`, `quote_ident`): bare when it reads back as itself
/// (lower case letters, digits, `_`, `$`, not starting with a digit or `$`,
/// not a reserved keyword), quoted otherwise.
pub fn display_ident(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED_KEYWORDS.contains(&name);
    match plain {
        true => name.to_string(),
        false => quote_ident(name),
    }
}

pub(crate) fn object_name(name: &ast::ObjectName) -> Result<String> {
    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident().map(normalize)).collect();
    match parts.as_slice() {
        [n] => Ok(n.clone()),
        [schema, n] if schema == "public" => Ok(n.clone()),
        [catalog, schema, n] if catalog == "brikk" && schema == "public" => Ok(n.clone()),
        _ => Err(Error::Unsupported(format!("stream name \"{name}\" (streams live in schema public)"))),
    }
}

fn parse_create_stream(parser: &mut Parser) -> Result<CreateStream> {
    expect_word(parser, "CREATE")?;
    expect_word(parser, "STREAM")?;
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = object_name(&parser.parse_object_name(false)?)?;
    parser.expect_token(&Token::LParen)?;
    let defs = parser.parse_comma_separated(Parser::parse_column_def)?;
    parser.expect_token(&Token::RParen)?;
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(defs.len());
    for def in defs {
        let name = normalize(&def.name);
        if SYSTEM_COLUMNS.contains(&name.as_str()) {
            return Err(Error::ReservedName(format!("column name \"{name}\" is reserved for a system column")));
        }
        if columns.iter().any(|c| c.name == name) {
            return Err(Error::AlreadyExists { kind: crate::error::ObjectKind::Column, name });
        }
        let mut nullable = true;
        let mut default = None;
        for opt in &def.options {
            match &opt.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Null => nullable = true,
                ColumnOption::Default(e) => default = Some(crate::defaults::text_of(e)),
                other => return Err(Error::Unsupported(format!("column option {other} on a stream"))),
            }
        }
        columns.push(ColumnDef {
            name,
            ty: column_type(&def.data_type)?,
            nullable,
            default,
            identity: None,
            missing: None,
        });
    }
    let mut stmt = CreateStream {
        name,
        if_not_exists,
        columns,
        partitions: DEFAULT_PARTITIONS,
        key: None,
        retention_micros: None,
        retention_bytes: None,
        archive: None,
    };
    let mut segment: Vec<(String, String)> = Vec::new();
    if parser.peek_token().token != Token::EOF {
        for opt in parser.parse_options(Keyword::WITH)? {
            apply_option(&mut stmt, opt, &mut segment)?;
        }
    }
    expect_end(parser)?;
    for (name, text) in segment {
        let Some(archive) = stmt.archive.as_mut() else {
            return Err(Error::InvalidParameter(format!("option \"{name}\" needs archive = true")));
        };
        match name.as_str() {
            "segment_rows" => {
                archive.segment_rows = text.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::InvalidParameter(format!("segment_rows must be a positive integer, got {text}"))
                })?
            }
            "segment_bytes" => archive.segment_bytes = parse_size(&text)?,
            _ => archive.segment_age_micros = Some(parse_duration(&text)?).filter(|m| *m > 0),
        }
    }
    if let Some(key) = &stmt.key {
        if !stmt.columns.iter().any(|c| &c.name == key) {
            return Err(Error::NotFound { kind: crate::error::ObjectKind::Column, name: key.clone() });
        }
    }
    Ok(stmt)
}

/// A `WITH (name = value)` option as (lowercased name, value text, value
/// expression): numbers and quoted strings give their text, bare words
/// their lowercased name.
pub(crate) fn option_parts(opt: SqlOption) -> Result<(String, String, Expr)> {
    let SqlOption::KeyValue { key, value } = opt else {
        return Err(Error::Syntax(format!("expected option = value, found {opt}")));
    };
    let name = normalize(&key);
    let text = match &value {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.clone(),
            Value::SingleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => normalize(i),
        other => return Err(Error::InvalidParameter(format!("invalid value for option \"{name}\": {other}"))),
    };
    Ok((name, text, value))
}

fn apply_option(stmt: &mut CreateStream, opt: SqlOption, segment: &mut Vec<(String, String)>) -> Result<()> {
    let (name, text, value) = option_parts(opt)?;
    match name.as_str() {
        "partitions" => {
            stmt.partitions =
                text.parse::<u32>().ok().filter(|p| (1..=MAX_PARTITIONS).contains(p)).ok_or_else(|| {
                    Error::InvalidParameter(format!(
                        "partitions must be an integer from 1 to {MAX_PARTITIONS}, got {text}"
                    ))
                })?;
        }
        "key" => {
            stmt.key = Some(match &value {
                Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)) => text.to_ascii_lowercase(),
                _ => text,
            })
        }
        // '7 days' is an age, '10 GB' a size.
        "retention" => match parse_size(&text) {
            Ok(bytes)
                if text.trim_end().ends_with(|c: char| c.is_ascii_alphabetic() && c.eq_ignore_ascii_case(&'b')) =>
            {
                stmt.retention_bytes = Some(bytes)
            }
            _ => stmt.retention_micros = Some(parse_duration(&text)?).filter(|m| *m > 0),
        },
        "retention_bytes" => stmt.retention_bytes = Some(parse_size(&text)?),
        "archive" => {
            stmt.archive = match text.to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" => Some(ArchiveDef::default()),
                "false" | "off" | "no" => None,
                _ if text.starts_with("file://") || text.starts_with("s3://") => {
                    Some(ArchiveDef { location: Some(text.trim_end_matches('/').to_string()), ..ArchiveDef::default() })
                }
                _ => {
                    return Err(Error::InvalidParameter(format!(
                    "archive must be true, false, or an object-store URL (file:///dir, s3://bucket/prefix), got {text}"
                )))
                }
            }
        }
        "segment_rows" | "segment_bytes" | "segment_age" => segment.push((name, text)),
        other => {
            return Err(Error::InvalidParameter(format!(
                "unknown stream option \"{other}\" (expected partitions, key, retention, retention_bytes, archive, \
                 segment_rows, segment_bytes or segment_age)"
            )))
        }
    }
    Ok(())
}

fn parse_drop_stream(parser: &mut Parser) -> Result<Statement> {
    expect_word(parser, "DROP")?;
    expect_word(parser, "STREAM")?;
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let names = parser
        .parse_comma_separated(|p| p.parse_object_name(false))?
        .iter()
        .map(object_name)
        .collect::<Result<Vec<_>>>()?;
    let cascade = parser.parse_keyword(Keyword::CASCADE);
    if !cascade {
        let _ = parser.parse_keyword(Keyword::RESTRICT);
    }
    expect_end(parser)?;
    Ok(Statement::DropStream { names, if_exists, cascade })
}

/// Maps sqlparser's (line, column) locations back to byte offsets.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn byte_offset(&self, loc: Location) -> usize {
        let Some(&line_start) = self.starts.get(loc.line.saturating_sub(1) as usize) else {
            return self.text.len();
        };
        let col = loc.column.saturating_sub(1) as usize;
        self.text[line_start..].char_indices().nth(col).map(|(i, _)| line_start + i).unwrap_or(self.text.len())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn identifiers_are_quoted_when_they_would_not_read_back() {
        assert_eq!(display_ident("board_pkey"), "board_pkey");
        assert_eq!(display_ident("a$1"), "a$1");
        for (name, shown) in [("Board", "\"Board\""), ("1st", "\"1st\""), ("user", "\"user\""), ("a b", "\"a b\"")] {
            assert_eq!(display_ident(name), shown);
        }
        assert_eq!(quote_ident("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    /// asyncpg's domain base-type lookup becomes NULL, and only it.
    #[test]
    fn asyncpg_domain_lookups_are_null() {
        let sql = "SELECT (CASE WHEN t.typtype = 'd' THEN (WITH RECURSIVE typebases(oid, depth) AS ( \
                   SELECT t2.typbasetype AS oid, 0 AS depth FROM pg_type t2 WHERE t2.oid = t.oid UNION ALL \
                   SELECT t2.typbasetype, tb.depth + 1 FROM pg_type t2, typebases tb WHERE tb.oid = (t2.oid) \
                   ) SELECT oid FROM typebases ORDER BY depth DESC LIMIT 1) ELSE NULL END) AS basetype, \
                   (SELECT 1) AS x FROM pg_type t";
        let out = without_domain_base_lookup(sql).unwrap();
        assert_eq!(
            out,
            "SELECT (CASE WHEN t.typtype = 'd' THEN NULL ELSE NULL END) AS basetype, (SELECT 1) AS x FROM pg_type t"
        );
        assert_eq!(without_domain_base_lookup("SELECT 1"), None);
    }

    use super::*;
    use brikk_storage::ColumnType;

    fn p(sql: &str) -> Result<Vec<Statement>> {
        parse(sql, &PostgresCompatibilityParser::new())
    }

    #[test]
    fn inserts_parse_as_whole_statements_parse() {
        let compat = PostgresCompatibilityParser::new();
        for sql in [
            "INSERT INTO t VALUES (1, 'a', -2.5, NULL, true), ($1, +3, 'it''s', $2, false)",
            "insert into t (a, b) values ('{1,2}'::int[], current_user)",
            "INSERT INTO t VALUES ('{\"k\": 1}'::jsonb, 1 + 2) ON CONFLICT (a) DO UPDATE SET b = excluded.b RETURNING *",
            "INSERT INTO t SELECT * FROM pg_class",
        ] {
            let Statement::Sql(ours) = p(sql).unwrap().remove(0) else { panic!("{sql}") };
            let mut theirs = match sql.contains("pg_class") {
                true => compat.parse(sql).unwrap().remove(0),
                false => {
                    let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
                    user_rules().iter().fold(stmt, |s, rule| rule.rewrite(s))
                }
            };
            crate::sql::pg_compat::rewrite(&mut theirs);
            assert_eq!(ours.to_string(), theirs.to_string(), "{sql}");
        }
        let err = p("INSERT INTO t VALUES (1) garbage").unwrap_err();
        assert!(matches!(err, Error::Syntax(_)), "{err:?}");
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let stmts = p("select 'a;b'; -- c;\n select 2;;").unwrap();
        assert_eq!(stmts.len(), 2);
        let texts: Vec<String> = stmts
            .iter()
            .map(|s| match s {
                Statement::Sql(s) => s.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["SELECT 'a;b'", "SELECT 2"]);
        let stmts = p("SHOW STREAMS; select 1 -- trailing").unwrap();
        assert!(matches!(stmts[0], Statement::ShowStreams), "{stmts:?}");
        assert!(matches!(&stmts[1], Statement::Sql(s) if s.to_string() == "SELECT 1"), "{stmts:?}");
        assert!(p("").unwrap().is_empty());
        assert!(p(" ; ;").unwrap().is_empty());
    }

    #[test]
    fn parses_create_stream_with_options() {
        let stmts = p("CREATE STREAM IF NOT EXISTS Tasks (task_id TEXT NOT NULL, n BIGINT) WITH (partitions = 8, key = 'task_id', retention = '7 days')").unwrap();
        let Statement::CreateStream(cs) = &stmts[0] else { panic!("{stmts:?}") };
        assert_eq!(cs.name, "tasks");
        assert!(cs.if_not_exists);
        assert_eq!(cs.partitions, 8);
        assert_eq!(cs.key.as_deref(), Some("task_id"));
        assert_eq!(cs.retention_micros, Some(7 * 86_400_000_000));
        assert_eq!(
            cs.columns[0],
            ColumnDef {
                name: "task_id".into(),
                ty: ColumnType::Text,
                nullable: false,
                default: None,
                identity: None,
                missing: None
            }
        );
    }

    #[test]
    fn parses_archive_and_size_options() {
        let stmts = p("CREATE STREAM s (a TEXT) WITH (retention = '10 GB', archive = true, segment_rows = 100, segment_age = '5s')").unwrap();
        let Statement::CreateStream(cs) = &stmts[0] else { panic!() };
        assert_eq!(cs.retention_bytes, Some(10_000_000_000));
        assert_eq!(cs.retention_micros, None);
        let a = cs.archive.as_ref().unwrap();
        assert_eq!((a.segment_rows, a.segment_age_micros, a.location.as_deref()), (100, Some(5_000_000), None));
        let stmts = p("CREATE STREAM s (a TEXT) WITH (archive = 's3://bucket/lake/', retention_bytes = 4096)").unwrap();
        let Statement::CreateStream(cs) = &stmts[0] else { panic!() };
        assert_eq!(cs.archive.as_ref().unwrap().location.as_deref(), Some("s3://bucket/lake"));
        assert_eq!(cs.retention_bytes, Some(4096));
        assert!(matches!(p("CREATE STREAM s (a TEXT) WITH (segment_rows = 5)"), Err(Error::InvalidParameter(_))));
        assert!(matches!(p("CREATE STREAM s (a TEXT) WITH (archive = 'ftp://x')"), Err(Error::InvalidParameter(_))));
        assert!(matches!(
            p("CREATE STREAM s (a TEXT) WITH (retention_bytes = '5 parsecs')"),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn rejects_bad_create_stream() {
        assert!(matches!(p("CREATE STREAM s (a TEXT) WITH (partitions = 0)"), Err(Error::InvalidParameter(_))));
        assert!(matches!(p("CREATE STREAM s (a TEXT) WITH (key = 'b')"), Err(Error::NotFound { .. })));
        assert!(matches!(p("CREATE STREAM s (_offset BIGINT)"), Err(Error::ReservedName(_))));
        assert!(matches!(p("CREATE STREAM s (a TEXT, a INT)"), Err(Error::AlreadyExists { .. })));
        assert!(matches!(p("CREATE STREAM s (a TEXT) WITH (color = 'red')"), Err(Error::InvalidParameter(_))));
        assert!(matches!(p("CREATE STREAM s (a TEXT"), Err(Error::Syntax(_))));
    }

    #[test]
    fn parses_drop_and_show() {
        let stmts = p("DROP STREAM IF EXISTS a, public.b; SHOW STREAMS").unwrap();
        assert!(
            matches!(&stmts[0], Statement::DropStream { names, if_exists: true, cascade: false } if names == &["a", "b"])
        );
        assert!(matches!(stmts[1], Statement::ShowStreams));
    }
}
