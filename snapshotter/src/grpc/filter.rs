//! containerd's filter expressions as the snapshots `List` call receives them
//! (containerd `pkg/filters` syntax, applied to snapshot fields).
//!
//! A request carries several filters; a snapshot is listed when it matches any one.
//! A filter is selectors joined by `,`, all of which must match. A selector is a field
//! path alone (the field is present and non-empty) or `path==value` / `path!=value`.
//! Fields: `name`, `parent`, `kind` (`view`, `active`, `committed`, any case) and
//! `labels.KEY`; a key with characters other than letters, digits, `_`, `-` and `/`
//! is quoted: `labels."containerd.io/snapshot.ref"`. Values are bare words or quoted
//! strings. Regular expressions (`~=`) are not supported and are refused.

use crate::snapshots::{Info, Kind};

/// A filter that cannot be parsed or uses what berth does not support
/// (InvalidArgument).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("filter {filter:?}: {reason} at byte {at}")]
pub struct FilterError {
    /// The filter text (shortened).
    pub filter: String,
    /// Where parsing stopped.
    pub at: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// A field of a snapshot a selector looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Name,
    Parent,
    Kind,
    Label(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Present,
    Equal,
    NotEqual,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    field: Field,
    op: Op,
    value: String,
}

/// Parsed filters: a snapshot matches when every selector of any one group matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filters {
    any_of: Vec<Vec<Selector>>,
}

impl Filters {
    /// Parse the `filters` of a `List` request. No filters (or only empty ones) match
    /// everything.
    pub fn parse(filters: &[String]) -> Result<Filters, FilterError> {
        let mut any_of = Vec::new();
        for f in filters {
            let sels = Parser::new(f).selectors()?;
            if sels.is_empty() {
                // An empty filter matches everything, so the whole set does.
                return Ok(Filters::default());
            }
            any_of.push(sels);
        }
        Ok(Filters { any_of })
    }

    /// Whether `info` passes.
    pub fn matches(&self, info: &Info) -> bool {
        self.any_of.is_empty()
            || self
                .any_of
                .iter()
                .any(|sels| sels.iter().all(|s| s.matches(info)))
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::View => "view",
        Kind::Active => "active",
        Kind::Committed => "committed",
    }
}

impl Selector {
    fn matches(&self, info: &Info) -> bool {
        let value: Option<&str> = match &self.field {
            Field::Name => Some(&info.name),
            Field::Parent => info.parent.as_deref(),
            Field::Kind => Some(kind_name(info.kind)),
            Field::Label(k) => info.labels.get(k).map(String::as_str),
        };
        let value = value.filter(|v| !v.is_empty());
        let equal = |v: &str| match self.field {
            Field::Kind => v.eq_ignore_ascii_case(&self.value),
            _ => v == self.value,
        };
        match self.op {
            Op::Present => value.is_some(),
            Op::Equal => value.is_some_and(equal),
            Op::NotEqual => !value.is_some_and(equal),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser { text, pos: 0 }
    }

    fn err(&self, reason: &'static str) -> FilterError {
        FilterError {
            filter: self.text.chars().take(200).collect(),
            at: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn selectors(&mut self) -> Result<Vec<Selector>, FilterError> {
        let mut out = Vec::new();
        self.skip_space();
        if self.peek().is_none() {
            return Ok(out);
        }
        loop {
            out.push(self.selector()?);
            self.skip_space();
            match self.bump() {
                None => return Ok(out),
                Some(',') => {}
                Some(_) => return Err(self.err("expected ',' or the end")),
            }
        }
    }

    fn selector(&mut self) -> Result<Selector, FilterError> {
        self.skip_space();
        let path = self.field_path()?;
        let field = match path.first().map(String::as_str) {
            Some("name") if path.len() == 1 => Field::Name,
            Some("parent") if path.len() == 1 => Field::Parent,
            Some("kind") if path.len() == 1 => Field::Kind,
            Some("labels") if path.len() > 1 => Field::Label(path[1..].join(".")),
            _ => return Err(self.err("unknown field (name, parent, kind, labels.KEY)")),
        };
        self.skip_space();
        let op = if self.eat("==") {
            Op::Equal
        } else if self.eat("!=") {
            Op::NotEqual
        } else if self.text[self.pos..].starts_with("~=") {
            return Err(self.err("regular expressions (~=) are not supported"));
        } else {
            return Ok(Selector {
                field,
                op: Op::Present,
                value: String::new(),
            });
        };
        self.skip_space();
        let value = self.value()?;
        Ok(Selector { field, op, value })
    }

    fn field_path(&mut self) -> Result<Vec<String>, FilterError> {
        let mut path = Vec::new();
        loop {
            let part = if self.peek() == Some('"') {
                self.quoted()?
            } else {
                let start = self.pos;
                while self.peek().is_some_and(is_field_char) {
                    self.bump();
                }
                if self.pos == start {
                    return Err(self.err("expected a field name"));
                }
                self.text[start..self.pos].to_owned()
            };
            if part.is_empty() {
                return Err(self.err("empty field name"));
            }
            path.push(part);
            if !self.eat(".") {
                return Ok(path);
            }
        }
    }

    fn value(&mut self) -> Result<String, FilterError> {
        match self.peek() {
            Some('"') => self.quoted(),
            Some('/') => Err(self.err("regular expressions are not supported")),
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c != ',' && c != '"' && !c.is_whitespace())
                {
                    self.bump();
                }
                if self.pos == start {
                    return Err(self.err("expected a value"));
                }
                Ok(self.text[start..self.pos].to_owned())
            }
        }
    }

    fn quoted(&mut self) -> Result<String, FilterError> {
        self.bump(); // the opening quote
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err("unterminated quoted string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('/') => out.push('/'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    _ => return Err(self.err("unknown escape in quoted string")),
                },
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::UNIX_EPOCH;

    fn info(name: &str, kind: Kind, parent: Option<&str>, labels: &[(&str, &str)]) -> Info {
        Info {
            kind,
            name: name.into(),
            parent: parent.map(Into::into),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            created: UNIX_EPOCH,
            updated: UNIX_EPOCH,
        }
    }

    fn parse(fs: &[&str]) -> Result<Filters, FilterError> {
        Filters::parse(&fs.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn matching_table() {
        let a = info(
            "ns/1/sha256:aa",
            Kind::Committed,
            None,
            &[("containerd.io/snapshot.ref", "sha256:aa"), ("team", "x y")],
        );
        let b = info("ns/2/run", Kind::Active, Some("ns/1/sha256:aa"), &[]);
        let v = info("v", Kind::View, Some("ns/1/sha256:aa"), &[("team", "")]);
        let cases: &[(&[&str], [bool; 3])] = &[
            (&[], [true, true, true]),
            (&[""], [true, true, true]),
            (&["  "], [true, true, true]),
            (&["name==ns/2/run"], [false, true, false]),
            (&["name!=ns/2/run"], [true, false, true]),
            (&["parent"], [false, true, true]),
            (&["parent==ns/1/sha256:aa"], [false, true, true]),
            (&["kind==committed"], [true, false, false]),
            (&["kind==Active"], [false, true, false]),
            (&["kind!=view"], [true, true, false]),
            (&["labels.team"], [true, false, false]),
            (&[r#"labels.team=="x y""#], [true, false, false]),
            (
                &[r#"labels."containerd.io/snapshot.ref"==sha256:aa"#],
                [true, false, false],
            ),
            (
                &["labels.containerd.io/snapshot.ref==sha256:aa"],
                [true, false, false],
            ),
            (&["labels.team!=nope"], [true, true, true]),
            (
                &["kind==active,parent==ns/1/sha256:aa"],
                [false, true, false],
            ),
            (&[" kind == view , parent "], [false, false, true]),
            (&["kind==view", "name==ns/1/sha256:aa"], [true, false, true]),
            (&["kind==view", ""], [true, true, true]),
            (&[r#"name=="v""#], [false, false, true]),
            (&[r#"name=="a\"b""#], [false, false, false]),
        ];
        for (fs, want) in cases {
            let f = parse(fs).unwrap_or_else(|e| panic!("{fs:?}: {e}"));
            let got = [f.matches(&a), f.matches(&b), f.matches(&v)];
            assert_eq!(&got, want, "{fs:?}");
        }
    }

    #[test]
    fn refused_filters() {
        let cases: &[(&str, &str)] = &[
            ("name~=abc", "regular expressions"),
            ("labels.a~=/x/", "regular expressions"),
            ("name==/x/", "regular expressions"),
            ("size==3", "unknown field"),
            ("labels", "unknown field"),
            ("name.x==3", "unknown field"),
            ("name==", "expected a value"),
            ("name==a b", "expected ','"),
            ("name==a,", "expected a field name"),
            (r#"labels."unterminated"#, "unterminated"),
            (r#"name=="bad\q""#, "unknown escape"),
            (r#"labels.""==x"#, "empty field name"),
            ("==x", "expected a field name"),
            ("kind=view", "expected ','"),
        ];
        for (f, reason) in cases {
            let e = parse(&[f]).expect_err(f);
            assert!(e.reason.contains(reason), "{f}: {e}");
        }
    }

    #[test]
    fn error_names_the_filter() {
        let e = parse(&["name==ok", "size==3"]).unwrap_err();
        assert_eq!(e.filter, "size==3");
        assert!(e.to_string().contains("size==3"), "{e}");
    }
}
