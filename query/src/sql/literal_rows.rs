//! The rows of a bulk `INSERT … VALUES` of plain literals, read straight
//! from the tokens.
//!
//! sqlparser reads every item of a `VALUES` list as an expression, and
//! before it takes `'text'` for a string it tries to read a type name there
//! (`DATE '2026-01-01'`), building an error message each time that fails:
//! for a 1,000-row INSERT of literals, as `psql -f` and dump files send,
//! that was a third of the statement's time in the server. When every item
//! of every row is a plain literal — a string (`'…'`, `E'…'`), a number
//! with an optional sign, `NULL`, `TRUE` or `FALSE` — [`split`] reads the
//! rows after the first itself, giving the same expressions sqlparser
//! would, and leaves sqlparser the statement with its first row. Any other
//! shape (a cast, a function call, a row of another shape) leaves the
//! tokens as they are.

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{Expr, Parens, UnaryOperator, Value, ValueWithSpan};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

/// A `VALUES` row read from the tokens.
pub type Row = Parens<Vec<Expr>>;

/// `tokens` of an INSERT without the `VALUES` rows after the first, and
/// those rows, when every row holds plain literals (see the module docs);
/// otherwise `tokens` unchanged and no rows.
pub fn split(tokens: Vec<TokenWithSpan>) -> (Vec<TokenWithSpan>, Vec<Row>) {
    let Some(values) = values_keyword(&tokens) else { return (tokens, Vec::new()) };
    let Some((_, first_end)) = row(&tokens, skip_blank(&tokens, values + 1)) else { return (tokens, Vec::new()) };
    let mut rows = Vec::new();
    let mut at = first_end;
    loop {
        let next = skip_blank(&tokens, at);
        if tokens.get(next).map(|t| &t.token) != Some(&Token::Comma) {
            break;
        }
        match row(&tokens, skip_blank(&tokens, next + 1)) {
            Some((r, end)) => {
                rows.push(r);
                at = end;
            }
            None => return (tokens, Vec::new()),
        }
    }
    if rows.is_empty() {
        return (tokens, rows);
    }
    let mut head = tokens;
    let tail = head.split_off(at);
    head.truncate(first_end);
    head.extend(tail);
    (head, rows)
}

/// The index of the `VALUES` keyword outside any parentheses.
fn values_keyword(tokens: &[TokenWithSpan]) -> Option<usize> {
    let mut depth = 0i32;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.keyword == Keyword::VALUES && w.quote_style.is_none() => return Some(i),
            _ => {}
        }
    }
    None
}

/// The index of the first token at or after `at` that is not whitespace.
fn skip_blank(tokens: &[TokenWithSpan], mut at: usize) -> usize {
    while matches!(tokens.get(at).map(|t| &t.token), Some(Token::Whitespace(_))) {
        at += 1;
    }
    at
}

/// The row of plain literals starting at `at` (its `(`), and the index
/// after its `)`.
fn row(tokens: &[TokenWithSpan], at: usize) -> Option<(Row, usize)> {
    let open = tokens.get(at).filter(|t| t.token == Token::LParen)?;
    let mut items = Vec::new();
    let mut i = at + 1;
    loop {
        let (item, next) = literal(tokens, skip_blank(tokens, i))?;
        items.push(item);
        let sep = skip_blank(tokens, next);
        match tokens.get(sep).map(|t| &t.token) {
            Some(Token::Comma) => i = sep + 1,
            Some(Token::RParen) => {
                let close = &tokens[sep];
                let row = Parens {
                    opening_token: AttachedToken(open.clone()),
                    content: items,
                    closing_token: AttachedToken(close.clone()),
                };
                return Some((row, sep + 1));
            }
            _ => return None,
        }
    }
}

/// The plain literal at `at`, as sqlparser reads it, and the index after it.
fn literal(tokens: &[TokenWithSpan], at: usize) -> Option<(Expr, usize)> {
    let t = tokens.get(at)?;
    let value = |v: Value| Expr::Value(ValueWithSpan { value: v, span: t.span });
    let expr = match &t.token {
        Token::SingleQuotedString(s) => value(Value::SingleQuotedString(s.clone())),
        Token::EscapedStringLiteral(s) => value(Value::EscapedStringLiteral(s.clone())),
        Token::Number(n, long) => value(Value::Number(n.clone(), *long)),
        Token::Word(w) if w.quote_style.is_none() => match w.keyword {
            Keyword::NULL => value(Value::Null),
            Keyword::TRUE => value(Value::Boolean(true)),
            Keyword::FALSE => value(Value::Boolean(false)),
            _ => return None,
        },
        Token::Minus | Token::Plus => {
            let op = if t.token == Token::Minus { UnaryOperator::Minus } else { UnaryOperator::Plus };
            let n = tokens.get(at + 1)?;
            let Token::Number(digits, long) = &n.token else { return None };
            let number = Expr::Value(ValueWithSpan { value: Value::Number(digits.clone(), *long), span: n.span });
            return Some((Expr::UnaryOp { op, expr: Box::new(number) }, at + 2));
        }
        _ => return None,
    };
    Some((expr, at + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    fn tokens(sql: &str) -> Vec<TokenWithSpan> {
        Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().unwrap()
    }

    fn parse(tokens: Vec<TokenWithSpan>) -> Statement {
        Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(tokens).parse_statement().unwrap()
    }

    /// The statement `split` and the extra rows make, against sqlparser's
    /// own reading of `sql`.
    fn same_as_sqlparser(sql: &str) -> usize {
        let (head, rows) = split(tokens(sql));
        let n = rows.len();
        let mut fast = parse(head);
        if n > 0 {
            let Statement::Insert(insert) = &mut fast else { panic!("{fast}") };
            let SetExpr::Values(values) = insert.source.as_mut().unwrap().body.as_mut() else { panic!("{sql}") };
            values.rows.extend(rows);
        }
        assert_eq!(fast, parse(tokens(sql)), "{sql}");
        assert_eq!(fast.to_string(), parse(tokens(sql)).to_string());
        n
    }

    #[test]
    fn plain_literal_rows_read_as_sqlparser_reads_them() {
        let sql = "INSERT INTO t (a, b, c) VALUES ('x', -1.5, NULL), ('it''s', +2, TRUE),\n (E'\\n', 3e2, false)";
        assert_eq!(same_as_sqlparser(sql), 2);
        let sql = "INSERT INTO t VALUES ('a', 1), ('b', 2) ON CONFLICT (a) DO UPDATE SET b = excluded.b RETURNING *";
        assert_eq!(same_as_sqlparser(sql), 1);
    }

    #[test]
    fn other_shapes_are_left_to_sqlparser() {
        for sql in [
            "INSERT INTO t VALUES ('a', 1)",
            "INSERT INTO t VALUES ('a', 1), ('{}'::jsonb, 2)",
            "INSERT INTO t VALUES ('a', 1), (now(), 2)",
            "INSERT INTO t VALUES ('a', 1), ($1, 2)",
            "INSERT INTO t VALUES ('a', 1), ('b' || 'c', 2)",
            "INSERT INTO t (a) SELECT 1",
        ] {
            assert_eq!(same_as_sqlparser(sql), 0, "{sql}");
        }
    }
}
