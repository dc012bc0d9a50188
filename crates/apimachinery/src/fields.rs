//! Field selectors as upstream `k8s.io/apimachinery/pkg/fields`:
//! comma-separated `field=value`, `field==value` and `field!=value` terms,
//! with `\,`, `\=` and `\\` escapes in values.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// A field selector error, with upstream's message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FieldSelectorError {
    /// A term without a recognised operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Invalid {
        /// The whole selector.
        selector: String,
        /// The term that could not be parsed.
        term: String,
    },
    /// A backslash followed by something other than `\`, `,` or `=`, or a
    /// trailing backslash.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),
    /// An unescaped `,` or `=` in a value; upstream prints the character's
    /// code point as a decimal number.
    #[error("invalid field selector: unescaped character in value: {}", *.0 as u32)]
    UnescapedRune(char),
}

/// The operator of a field selector requirement (upstream uses
/// `selection.Equals` for both `=` and `==`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

impl FieldOperator {
    /// The operator string: `=` or `!=`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        }
    }
}

/// One `field op value` term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field label, e.g. `metadata.name`.
    pub field: String,
    /// The operator.
    pub operator: FieldOperator,
    /// The (unescaped) value.
    pub value: String,
}

impl FieldRequirement {
    /// Whether a field with the given value (absent reads as "") satisfies
    /// the term.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match self.operator {
            FieldOperator::Equals => v == self.value,
            FieldOperator::NotEquals => v != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.field,
            self.operator.as_str(),
            escape_value(&self.value)
        )
    }
}

/// A field selector: a conjunction of terms. The empty selector matches
/// everything.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    terms: Vec<FieldRequirement>,
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// A selector with the single term `field=value`.
    pub fn one_term_equal(field: &str, value: &str) -> Selector {
        Selector {
            terms: vec![FieldRequirement {
                field: field.to_string(),
                operator: FieldOperator::Equals,
                value: value.to_string(),
            }],
        }
    }

    /// A selector with the single term `field!=value`.
    pub fn one_term_not_equal(field: &str, value: &str) -> Selector {
        Selector {
            terms: vec![FieldRequirement {
                field: field.to_string(),
                operator: FieldOperator::NotEquals,
                value: value.to_string(),
            }],
        }
    }

    /// A selector requiring every field of the set to equal its value.
    pub fn from_set(set: &BTreeMap<String, String>) -> Selector {
        Selector {
            terms: set
                .iter()
                .map(|(k, v)| FieldRequirement {
                    field: k.clone(),
                    operator: FieldOperator::Equals,
                    value: v.clone(),
                })
                .collect(),
        }
    }

    /// Parses a field selector (upstream `fields.ParseSelector`). Terms are
    /// split on unescaped commas and sorted (as raw text) before parsing;
    /// empty terms are skipped.
    pub fn parse(selector: &str) -> Result<Selector, FieldSelectorError> {
        let mut parts = split_terms(selector);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(FieldSelectorError::Invalid {
                    selector: selector.to_string(),
                    term: part.to_string(),
                });
            };
            let value = unescape_value(rhs)?;
            terms.push(FieldRequirement {
                field: lhs.to_string(),
                operator: op,
                value,
            });
        }
        Ok(Selector { terms })
    }

    /// Whether the selector has no terms (matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in order: what the apiserver checks against the field
    /// labels a kind supports.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// Whether an object matches; `get` returns a field label's value, with
    /// `None` (unknown or absent) read as "" as upstream's `Fields.Get` does.
    pub fn matches<F>(&self, get: F) -> bool
    where
        F: Fn(&str) -> Option<String>,
    {
        self.terms
            .iter()
            .all(|t| t.matches_value(get(&t.field).as_deref()))
    }

    /// If a term requires `field` to equal a value, that value.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }

    /// Rewrites every term's field and value (upstream `Transform`, used to
    /// convert versioned field labels); a term mapped to an empty field and
    /// value is dropped.
    pub fn transform<F, E>(&self, f: F) -> Result<Selector, E>
    where
        F: Fn(&str, &str) -> Result<(String, String), E>,
    {
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            let (field, value) = f(&t.field, &t.value)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            terms.push(FieldRequirement {
                field,
                operator: t.operator,
                value,
            });
        }
        Ok(Selector { terms })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Selector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Selector, FieldSelectorError> {
        Selector::parse(s)
    }
}

/// Splits on commas not preceded by a backslash; escapes are kept.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, then `==`, then `=` at each
/// position).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if let Some(r) = rest.strip_prefix("!=") {
            return Some((&term[..i], FieldOperator::NotEquals, r));
        }
        if let Some(r) = rest.strip_prefix("==") {
            return Some((&term[..i], FieldOperator::Equals, r));
        }
        if let Some(r) = rest.strip_prefix('=') {
            return Some((&term[..i], FieldOperator::Equals, r));
        }
    }
    None
}

/// Escapes `\`, `,` and `=` in a literal value for use in a field selector.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Unescapes a field selector value: `\\`, `\,` and `\=` are the only escapes,
/// and unescaped `,` or `=` are errors.
pub fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if matches!(c, '\\' | ',' | '=') {
                out.push(c);
            } else {
                return Err(FieldSelectorError::InvalidEscapeSequence(format!("\\{c}")));
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(FieldSelectorError::UnescapedRune(c)),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::InvalidEscapeSequence("\\".to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |f: &str| map.get(f).cloned()
    }

    #[test]
    fn parse_and_render() {
        let cases = [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a!=b", "a!=b"),
            ("b=1,a=2", "a=2,b=1"),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("x=a,,y=b", "x=a,y=b"),
            ("a=", "a="),
            ("=a", "=a"),
            ("a=b\\,c", "a=b\\,c"),
            ("a=b\\=c", "a=b\\=c"),
            ("a=b\\\\c", "a=b\\\\c"),
            (
                "metadata.name=foo,status.phase!=Running",
                "metadata.name=foo,status.phase!=Running",
            ),
            ("spec.nodeName=", "spec.nodeName="),
        ];
        for (input, want) in cases {
            let sel = Selector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), want, "{input}");
        }
        let sel = Selector::parse("a=b\\,c").unwrap_or_default();
        assert_eq!(sel.requirements()[0].value, "b,c");
    }

    #[test]
    fn parse_errors() {
        let err = |s: &str| {
            Selector::parse(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(err("a"), "invalid selector: 'a'; can't understand 'a'");
        assert_eq!(
            err("x=a,b"),
            "invalid selector: 'x=a,b'; can't understand 'b'"
        );
        assert_eq!(
            err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            err("a==b==c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            err("a=b\\c"),
            "invalid field selector: invalid escape sequence: \\c"
        );
        assert_eq!(
            err("a=b\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
        assert_eq!(err("a=b\\,"), "");
        assert_eq!(
            err("a!=b!=c"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn matching() {
        let obj = fields(&[("metadata.name", "foo"), ("status.phase", "Running")]);
        for yes in [
            "",
            "metadata.name=foo",
            "metadata.name==foo",
            "status.phase!=Pending",
            "spec.nodeName=",
            "spec.nodeName!=x",
            "metadata.name=foo,status.phase=Running",
        ] {
            assert!(Selector::parse(yes).is_ok_and(|s| s.matches(&obj)), "{yes}");
        }
        for no in [
            "metadata.name=bar",
            "status.phase!=Running",
            "spec.nodeName=x",
            "metadata.name=foo,status.phase=Pending",
        ] {
            assert!(Selector::parse(no).is_ok_and(|s| !s.matches(&obj)), "{no}");
        }
        let escaped = fields(&[("a", "x,y=z\\")]);
        assert!(Selector::parse("a=x\\,y\\=z\\\\").is_ok_and(|s| s.matches(&escaped)));
    }

    #[test]
    fn requirements_and_helpers() {
        let sel = Selector::parse("metadata.namespace!=kube-system,metadata.name=foo")
            .unwrap_or_default();
        let reqs: Vec<(String, &str, String)> = sel
            .requirements()
            .iter()
            .map(|r| (r.field.clone(), r.operator.as_str(), r.value.clone()))
            .collect();
        assert_eq!(
            reqs,
            vec![
                ("metadata.name".to_string(), "=", "foo".to_string()),
                (
                    "metadata.namespace".to_string(),
                    "!=",
                    "kube-system".to_string()
                ),
            ]
        );
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("foo"));
        assert_eq!(sel.requires_exact_match("metadata.namespace"), None);
        assert!(Selector::everything().is_empty());
        assert_eq!(Selector::one_term_equal("a", "b,c").to_string(), "a=b\\,c");
        assert_eq!(Selector::one_term_not_equal("a", "b").to_string(), "a!=b");
        let set: BTreeMap<String, String> = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]
        .into();
        assert_eq!(Selector::from_set(&set).to_string(), "a=1,b=2");
        let renamed: Result<Selector, String> = sel.transform(|f, v| {
            if f == "metadata.namespace" {
                Ok((String::new(), String::new()))
            } else {
                Ok((f.replace("metadata.", "m."), v.to_uppercase()))
            }
        });
        assert_eq!(
            renamed.map(|s| s.to_string()).ok(),
            Some("m.name=FOO".to_string())
        );
        assert_eq!(escape_value("a\\b,c=d"), "a\\\\b\\,c\\=d");
        assert_eq!(
            unescape_value("a\\\\b\\,c\\=d").ok(),
            Some("a\\b,c=d".to_string())
        );
        assert_eq!(
            "a=b".parse::<Selector>().map(|s| s.to_string()).ok(),
            Some("a=b".to_string())
        );
    }
}
