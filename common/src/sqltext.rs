//! Named parameters (`:name`) in scenario SQL, and their rewriting into each driver's
//! placeholders.
//!
//! The scanner knows enough SQL to leave alone what only looks like a parameter: string
//! literals, quoted identifiers, comments, PostgreSQL `::` casts and `$tag$` quoting,
//! MySQL's `:=`. Positional placeholders are refused, so every bound value has a name the
//! file defines.

use crate::target::Driver;
use crate::value::Arg;

/// SQL split into text and parameter references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Param(String),
}

/// SQL with its parameters found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSql {
    pub segments: Vec<Segment>,
}

impl ParsedSql {
    /// Parameter names in order of first use.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for s in &self.segments {
            if let Segment::Param(n) = s {
                if !names.contains(&n.as_str()) {
                    names.push(n);
                }
            }
        }
        names
    }

    /// The statement for the prepared protocol, and for each placeholder the index (in
    /// `names`) of the parameter bound to it. PostgreSQL numbers each name once and
    /// reuses the number; MySQL and SQLite bind `?` once per occurrence.
    pub fn placeholders(&self, driver: Driver, names: &[String]) -> (String, Vec<usize>) {
        let mut sql = String::new();
        let mut binds: Vec<usize> = Vec::new();
        for s in &self.segments {
            match s {
                Segment::Text(t) => sql.push_str(t),
                Segment::Param(n) => {
                    let idx = names.iter().position(|x| x == n).unwrap_or(0);
                    if driver == Driver::Postgres {
                        let k = match binds.iter().position(|b| *b == idx) {
                            Some(k) => k,
                            None => {
                                binds.push(idx);
                                binds.len() - 1
                            }
                        };
                        sql.push('$');
                        sql.push_str(&(k + 1).to_string());
                    } else {
                        binds.push(idx);
                        sql.push('?');
                    }
                }
            }
        }
        (sql, binds)
    }

    /// The statement for the text protocol: every parameter written as a literal.
    /// `value(name)` gives the value of each name.
    pub fn render<'a>(&self, driver: Driver, value: impl Fn(&str) -> &'a Arg) -> String {
        let mut sql = String::new();
        for s in &self.segments {
            match s {
                Segment::Text(t) => sql.push_str(t),
                Segment::Param(n) => value(n).write_literal(driver, &mut sql),
            }
        }
        sql
    }
}

/// Find the `:name` parameters of `sql` as `driver` reads it.
///
/// # Errors
/// An unterminated string, identifier or comment, or a positional placeholder (`?`,
/// `$1`); the message says which and where.
pub fn parse(driver: Driver, sql: &str) -> Result<ParsedSql, String> {
    let b = sql.as_bytes();
    let mut segments = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    let mysql = driver == Driver::MySql;
    let at = |i: usize| {
        let col = sql[..i].chars().count() + 1;
        format!("at character {col}")
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                let close = c;
                let mut j = i + 1;
                loop {
                    if j >= b.len() {
                        let what = if c == b'\'' { "string" } else { "quoted name" };
                        return Err(format!("unterminated {what} starting {}", at(i)));
                    }
                    if mysql && b[j] == b'\\' && c != b'`' {
                        j += 2;
                        continue;
                    }
                    if b[j] == close {
                        if j + 1 < b.len() && b[j + 1] == close {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                i = j + 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => i = line_end(b, i),
            b'#' if mysql => i = line_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..]
                    .find("*/")
                    .ok_or_else(|| format!("unterminated comment starting {}", at(i)))?;
                i = i + 2 + end + 2;
            }
            b'$' if driver == Driver::Postgres => {
                // $1 positional, or $tag$ … $tag$ quoting.
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|x| !(x.is_ascii_alphanumeric() || *x == b'_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e)
                        if b[e] == b'$' && !b[i + 1..e].first().is_some_and(u8::is_ascii_digit) =>
                    {
                        let tag = &sql[i..=e];
                        let close = sql[e + 1..].find(tag).ok_or_else(|| {
                            format!("unterminated {tag} quoting starting {}", at(i))
                        })?;
                        i = e + 1 + close + tag.len();
                    }
                    _ if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                        return Err(format!(
                            "positional placeholder ${} {}: name the parameter instead, e.g. :id, and define it under params",
                            sql[i + 1..].chars().take_while(char::is_ascii_digit).collect::<String>(),
                            at(i)
                        ));
                    }
                    _ => i += 1,
                }
            }
            b'?' if driver != Driver::Postgres => {
                return Err(format!(
                    "positional placeholder ? {}: name the parameter instead, e.g. :id, and define it under params",
                    at(i)
                ));
            }
            b':' => {
                let next = b.get(i + 1).copied();
                match next {
                    Some(b':') | Some(b'=') => i += 2,
                    Some(n) if n.is_ascii_alphabetic() || n == b'_' => {
                        // `a:b` inside an identifier-like run (e.g. a MySQL time literal
                        // outside quotes) is not a parameter; a parameter follows a
                        // non-identifier character.
                        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
                            i += 1;
                            continue;
                        }
                        let end = b[i + 1..]
                            .iter()
                            .position(|x| !(x.is_ascii_alphanumeric() || *x == b'_'))
                            .map_or(b.len(), |p| i + 1 + p);
                        if text_start < i {
                            segments.push(Segment::Text(sql[text_start..i].to_string()));
                        }
                        segments.push(Segment::Param(sql[i + 1..end].to_string()));
                        text_start = end;
                        i = end;
                    }
                    _ => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    if text_start < sql.len() {
        segments.push(Segment::Text(sql[text_start..].to_string()));
    }
    Ok(ParsedSql { segments })
}

fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|x| *x == b'\n')
        .map_or(b.len(), |p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(driver: Driver, sql: &str) -> Vec<String> {
        parse(driver, sql)
            .unwrap()
            .names()
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn finds_parameters_and_skips_what_only_looks_like_one() {
        let sql = "SELECT ':nope', \"a:b\", x::int, @v := 1 FROM t -- :c\n WHERE id = :id AND k BETWEEN :lo AND :hi /* :d */ OR id = :id";
        assert_eq!(names(Driver::Postgres, sql), ["id", "lo", "hi"]);
        // The casts docs/scenarios.md tells PostgreSQL users to write.
        assert_eq!(
            names(
                Driver::Postgres,
                "SELECT CAST(:sku AS text) IS NOT NULL, :qty::int"
            ),
            ["sku", "qty"]
        );
        assert_eq!(names(Driver::MySql, "SELECT 'it\\'s :x' # :y\n, :z"), ["z"]);
        assert_eq!(
            names(Driver::Postgres, "DO $body$ SELECT :x $body$; SELECT :y"),
            ["y"]
        );
    }

    #[test]
    fn postgres_numbers_each_name_once_others_bind_per_use() {
        let p = parse(
            Driver::Postgres,
            "UPDATE t SET a = :x WHERE id = :id OR b = :x",
        )
        .unwrap();
        let names = ["x".to_string(), "id".to_string()];
        assert_eq!(
            p.placeholders(Driver::Postgres, &names),
            (
                "UPDATE t SET a = $1 WHERE id = $2 OR b = $1".to_string(),
                vec![0, 1]
            )
        );
        let p = parse(
            Driver::MySql,
            "UPDATE t SET a = :x WHERE id = :id OR b = :x",
        )
        .unwrap();
        assert_eq!(
            p.placeholders(Driver::MySql, &names),
            (
                "UPDATE t SET a = ? WHERE id = ? OR b = ?".to_string(),
                vec![0, 1, 0]
            )
        );
    }

    #[test]
    fn text_protocol_writes_literals() {
        let p = parse(Driver::MySql, "INSERT INTO t VALUES (:id, :name)").unwrap();
        let id = Arg::Int(3);
        let name = Arg::Text("O'Brien".into());
        let sql = p.render(Driver::MySql, |n| if n == "id" { &id } else { &name });
        assert_eq!(sql, "INSERT INTO t VALUES (3, 'O''Brien')");
    }

    #[test]
    fn positional_placeholders_and_open_quotes_are_refused() {
        let e = parse(Driver::MySql, "SELECT * FROM t WHERE id = ?").unwrap_err();
        assert!(
            e.contains("positional placeholder ?") && e.contains(":id"),
            "{e}"
        );
        let e = parse(Driver::Postgres, "SELECT * FROM t WHERE id = $1").unwrap_err();
        assert!(e.contains("$1"), "{e}");
        let e = parse(Driver::Sqlite, "SELECT 'abc").unwrap_err();
        assert!(e.contains("unterminated string"), "{e}");
        // PostgreSQL's jsonb `?` operator is not a placeholder there.
        assert!(parse(Driver::Postgres, "SELECT doc ? 'k' FROM t").is_ok());
    }
}
