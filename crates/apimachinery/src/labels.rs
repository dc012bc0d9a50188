//! Label selectors as upstream `k8s.io/apimachinery/pkg/labels`: the string
//! syntax (`a=b,c!=d,e in (x,y),!f,g>5`), conversion from a
//! `metav1.LabelSelector` JSON object, matching against label sets, and the
//! canonical string form. Also `ValidateLabelSelector` from
//! `pkg/apis/meta/v1/validation`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::field::{aggregate_message, FieldError, Path};
use crate::validation::{is_qualified_name, is_valid_label_value, validate_labels};

/// A set of labels a selector can be matched against.
pub trait LabelSet {
    /// The value of the label `key`, if present.
    fn get_label(&self, key: &str) -> Option<&str>;

    /// Whether the label `key` is present.
    fn has_label(&self, key: &str) -> bool {
        self.get_label(key).is_some()
    }
}

impl LabelSet for BTreeMap<String, String> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> LabelSet for HashMap<String, String, S> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A JSON object of labels; entries whose value is not a string count as
/// absent.
impl LabelSet for Map<String, Value> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// A JSON value of labels (e.g. `metadata.labels`); anything but an object
/// (including `null` for absent labels) is an empty set.
impl LabelSet for Value {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl<T: LabelSet + ?Sized> LabelSet for &T {
    fn get_label(&self, key: &str) -> Option<&str> {
        (**self).get_label(key)
    }
}

/// A selector operator (upstream `selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `in`: the label is set to one of the values.
    In,
    /// `notin`: the label is absent or set to none of the values.
    NotIn,
    /// `=`: the label is set to the value.
    Equals,
    /// `==`: same as `=`.
    DoubleEquals,
    /// `!=`: the label is absent or set to another value.
    NotEquals,
    /// The label is present.
    Exists,
    /// `!`: the label is absent.
    DoesNotExist,
    /// `>`: the label is an integer greater than the value.
    GreaterThan,
    /// `<`: the label is an integer less than the value.
    LessThan,
}

impl Operator {
    /// Upstream's string for the operator: `in`, `notin`, `=`, `==`, `!=`,
    /// `exists`, `!`, `gt`, `lt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// An error parsing or building a label selector; the message is upstream's.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct SelectorError {
    /// The error message.
    pub message: String,
}

impl SelectorError {
    fn new(message: impl Into<String>) -> SelectorError {
        SelectorError {
            message: message.into(),
        }
    }
}

/// One `key op values` clause of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

fn validate_label_key(key: &str, path: &Path) -> Option<FieldError> {
    let errs = is_qualified_name(key);
    (!errs.is_empty()).then(|| FieldError::invalid(path, key, errs.join("; ")))
}

fn validate_label_value(key: &str, value: &str, path: &Path) -> Option<FieldError> {
    let errs = is_valid_label_value(value);
    (!errs.is_empty()).then(|| FieldError::invalid(&path.key(key), value, errs.join("; ")))
}

impl Requirement {
    /// Builds a validated requirement (upstream `NewRequirement`): the key
    /// must be a qualified name, values valid label values, `in`/`notin`
    /// need at least one value, `=`/`==`/`!=`/`gt`/`lt` exactly one (an
    /// integer for `gt`/`lt`), `exists`/`!` none.
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, SelectorError> {
        Requirement::new_at(key, operator, values, &Path::default())
    }

    fn new_at(
        key: &str,
        operator: Operator,
        values: Vec<String>,
        path: &Path,
    ) -> Result<Requirement, SelectorError> {
        let mut errs = Vec::new();
        errs.extend(validate_label_key(key, &path.child("key")));
        let value_path = path.child("values");
        let vals_json = Value::from(values.clone());
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(FieldError::invalid(
                        &value_path,
                        vals_json,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &value_path,
                        vals_json,
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(FieldError::invalid(
                        &value_path,
                        vals_json,
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &value_path,
                        vals_json,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            &value_path.index(i),
                            v.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            errs.extend(validate_label_value(key, v, &value_path.index(i)));
        }
        if errs.is_empty() {
            Ok(Requirement {
                key: key.to_string(),
                operator,
                values,
            })
        } else {
            Err(SelectorError::new(aggregate_message(&errs)))
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Whether the labels satisfy this requirement.
    pub fn matches(&self, labels: &dyn LabelSet) -> bool {
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => labels
                .get_label(&self.key)
                .is_some_and(|v| self.has_value(v)),
            Operator::NotIn | Operator::NotEquals => labels
                .get_label(&self.key)
                .is_none_or(|v| !self.has_value(v)),
            Operator::Exists => labels.has_label(&self.key),
            Operator::DoesNotExist => !labels.has_label(&self.key),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = labels.get_label(&self.key).map(str::parse::<i64>) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        match self.operator {
            Operator::Equals => f.write_str("=")?,
            Operator::DoubleEquals => f.write_str("==")?,
            Operator::NotEquals => f.write_str("!=")?,
            Operator::In => f.write_str(" in ")?,
            Operator::NotIn => f.write_str(" notin ")?,
            Operator::GreaterThan => f.write_str(">")?,
            Operator::LessThan => f.write_str("<")?,
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        }
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        if self.values.len() == 1 {
            f.write_str(&self.values[0])?;
        } else {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: a conjunction of requirements, or the selector that
/// matches nothing (from a null `metav1.LabelSelector`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// The selector that matches every label set (the empty selector).
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// The selector that matches no label set.
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the string syntax (upstream `labels.Parse`). Requirements are
    /// sorted by key.
    pub fn parse(selector: &str) -> Result<Selector, SelectorError> {
        let mut parser = Parser::new(selector);
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// A selector requiring each label of the set to equal its value, without
    /// validating keys or values (upstream `SelectorFromSet`).
    pub fn from_set(set: &BTreeMap<String, String>) -> Selector {
        Selector {
            requirements: set
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
            nothing: false,
        }
    }

    /// Like [`Selector::from_set`] but validating keys and values (upstream
    /// `ValidatedSelectorFromSet`).
    pub fn validated_from_set(set: &BTreeMap<String, String>) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::with_capacity(set.len());
        for (k, v) in set {
            requirements.push(Requirement::new(k, Operator::Equals, vec![v.clone()])?);
        }
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` JSON object (upstream
    /// `LabelSelectorAsSelector`): `null` selects nothing, `{}` selects
    /// everything, `matchLabels` become `=` requirements and
    /// `matchExpressions` `In`/`NotIn`/`Exists`/`DoesNotExist` ones.
    pub fn from_label_selector(selector: &Value) -> Result<Selector, SelectorError> {
        let obj = match selector {
            Value::Null => return Ok(Selector::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError::new(format!(
                    "label selector must be an object, got {other}"
                )))
            }
        };
        let match_labels = match obj.get("matchLabels") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                return Err(SelectorError::new(format!(
                    "matchLabels must be an object, got {other}"
                )))
            }
        };
        let expressions: &[Value] = match obj.get("matchExpressions") {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(SelectorError::new(format!(
                    "matchExpressions must be an array, got {other}"
                )))
            }
        };
        if match_labels.is_none_or(Map::is_empty) && expressions.is_empty() {
            return Ok(Selector::everything());
        }
        let mut requirements = Vec::new();
        if let Some(labels) = match_labels {
            let mut keys: Vec<&String> = labels.keys().collect();
            keys.sort();
            for k in keys {
                let v = match labels.get(k) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => {
                        return Err(SelectorError::new(format!(
                            "matchLabels[{k}] must be a string, got {other}"
                        )))
                    }
                };
                requirements.push(Requirement::new(k, Operator::Equals, vec![v])?);
            }
        }
        for expr in expressions {
            let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
            let op_str = expr.get("operator").and_then(Value::as_str).unwrap_or("");
            let operator = match op_str {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::new(format!(
                        "{} is not a valid label selector operator",
                        crate::gofmt::quote(other)
                    )))
                }
            };
            let values: Vec<String> = match expr.get("values") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).unwrap_or_default())
                    .collect(),
                _ => Vec::new(),
            };
            requirements.push(Requirement::new(key, operator, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Adds a requirement, keeping requirements sorted by key.
    pub fn add_requirement(mut self, requirement: Requirement) -> Selector {
        if self.nothing {
            return self;
        }
        self.requirements.push(requirement);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &dyn LabelSet) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector does not restrict anything (upstream `Empty`);
    /// false for [`Selector::nothing`].
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is the selector that matches nothing.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key (empty for `nothing`).
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// If the selector requires `label` to have one specific value (via `=`,
    /// `==` or a single-valued `in`), that value.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        Selector::parse(s)
    }
}

/// Validates a `metav1.LabelSelector` JSON object (upstream
/// `ValidateLabelSelector`). With `allow_invalid_label_value_in_selector`
/// the expression values are not checked as label values.
pub fn validate_label_selector(
    selector: &Value,
    allow_invalid_label_value_in_selector: bool,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let obj = match selector {
        Value::Null => return errs,
        Value::Object(obj) => obj,
        other => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be of type object",
            ));
            return errs;
        }
    };
    if let Some(labels) = obj.get("matchLabels") {
        errs.extend(validate_labels(labels, &path.child("matchLabels")));
    }
    let expressions: &[Value] = match obj.get("matchExpressions") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => &[],
        Some(other) => {
            errs.push(FieldError::type_invalid(
                &path.child("matchExpressions"),
                other.clone(),
                "must be of type array",
            ));
            &[]
        }
    };
    for (i, expr) in expressions.iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let operator = expr.get("operator").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = match expr.get("values") {
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().unwrap_or("")).collect(),
            _ => Vec::new(),
        };
        match operator {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        errs.extend(crate::validation::validate_label_name(key, &p.child("key")));
        if !allow_invalid_label_value_in_selector {
            for (j, v) in values.iter().enumerate() {
                for msg in is_valid_label_value(v) {
                    errs.push(FieldError::invalid(&p.child("values").index(j), *v, msg));
                }
            }
        }
    }
    errs
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn literal_token(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Byte-oriented lexer, as upstream's: a NUL byte reads as end of input.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let start = self.pos;
        loop {
            let c = self.read();
            if c == 0 {
                break;
            }
            if is_special(c) || is_whitespace(c) {
                self.unread();
                break;
            }
        }
        let end = self.pos.min(self.s.len());
        let mut bytes = &self.s[start..end];
        // A NUL byte ends the input, as in upstream's lexer.
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            bytes = &bytes[..nul];
        }
        let lit = String::from_utf8_lossy(bytes).into_owned();
        match literal_token(bytes) {
            Some(tok) => (tok, lit),
            None => (Token::Identifier, lit),
        }
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut last: Option<(Token, String)> = None;
        let mut buffer = Vec::new();
        loop {
            let c = self.read();
            if c == 0 {
                break;
            }
            if is_special(c) {
                buffer.push(c);
                if let Some(tok) = literal_token(&buffer) {
                    last = Some((tok, String::from_utf8_lossy(&buffer).into_owned()));
                } else if last.is_some() {
                    self.unread();
                    break;
                }
            } else {
                self.unread();
                break;
            }
        }
        match last {
            Some(item) => item,
            None => (
                Token::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&buffer)
                ),
            ),
        }
    }

    fn lex(&mut self) -> (Token, String) {
        let mut c = self.read();
        while is_whitespace(c) {
            c = self.read();
        }
        if c == 0 {
            return (Token::EndOfString, String::new());
        }
        self.unread();
        if is_special(c) {
            self.scan_special_symbol()
        } else {
            self.scan_id_or_keyword()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
    path: Path,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn new(selector: &str) -> Parser {
        let mut lexer = Lexer {
            s: selector.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Parser {
            items,
            position: 0,
            path: Path::default(),
        }
    }

    fn map_token(tok: Token, ctx: Context) -> Token {
        match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => tok,
        }
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(self.position)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        (Parser::map_token(tok, ctx), lit)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.lookahead(ctx);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| {
                        SelectorError::new(format!("unable to parse requirement: {}", e.message))
                    })?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(SelectorError::new(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError::new(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )))
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(SelectorError::new(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new_at(&key, op, Vec::new(), &self.path);
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new_at(&key, operator, values.into_iter().collect(), &self.path)
    }

    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), SelectorError> {
        let mut operator = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(SelectorError::new(format!(
                "found '{lit}', expected: identifier"
            )));
        }
        if let Some(err) = validate_label_key(&lit, &self.path) {
            return Err(SelectorError::new(err.to_string()));
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Token::EndOfString || t == Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(SelectorError::new(format!(
                    "found '{lit}', expected: {BINARY_OPERATORS}"
                )))
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(SelectorError::new(format!("found '{lit}' expected: '('")));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                let (t, _) = self.consume(Context::Values);
                if t != Token::ClosedPar {
                    return Err(SelectorError::new(format!("found '{lit}', expected: ')'")));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(SelectorError::new(format!(
                "found '{lit}', expected: ',', ')' or identifier"
            ))),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut set = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.insert(lit);
                    let (t2, l2) = self.lookahead(Context::Values);
                    match t2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => {
                            return Err(SelectorError::new(format!(
                                "found '{l2}', expected: ',' or ')'"
                            )))
                        }
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (t2, _) = self.lookahead(Context::Values);
                    if t2 == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if t2 == Token::Comma {
                        self.consume(Context::Values);
                        set.insert(String::new());
                    }
                }
                _ => {
                    return Err(SelectorError::new(format!(
                        "found '{lit}', expected: ',', or identifier"
                    )))
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(BTreeSet::from([lit]))
        } else {
            Err(SelectorError::new(format!(
                "found '{lit}', expected: identifier"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse_err(s: &str) -> String {
        Selector::parse(s)
            .err()
            .map(|e| e.message)
            .unwrap_or_default()
    }

    #[test]
    fn parse_and_render() {
        let cases = [
            ("", ""),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("z=c,y=b,x=a", "x=a,y=b,z=c"),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x>1", "x>1"),
            ("x<7", "x<7"),
            ("x>1,z<5", "x>1,z<5"),
            ("x in (a,b)", "x in (a,b)"),
            ("x in (b,a)", "x in (a,b)"),
            ("x notin (a)", "x notin (a)"),
            ("x in (a,a,b)", "x in (a,b)"),
            ("x", "x"),
            ("!x", "!x"),
            (" x ", "x"),
            ("x=", "x="),
            ("x= ", "x="),
            ("x=,z= ", "x=,z="),
            ("x in ()", "x in ()"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("w in (in,notin)", "w in (in,notin)"),
            ("x=a,!y, z in (c)", "x=a,!y,z in (c)"),
            ("a.b/c-d=e_f.g", "a.b/c-d=e_f.g"),
            ("\tx\n=\ra", "x=a"),
        ];
        for (input, want) in cases {
            let sel = Selector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), want, "{input}");
            // The canonical form parses back to the same selector.
            assert_eq!(
                Selector::parse(want).map(|s| s.to_string()).ok(),
                Some(want.to_string())
            );
        }
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse_err("x=a||y=b"), "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
        assert_eq!(
            parse_err("x==a==b"),
            "found '==', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("x=a b"),
            "found 'b', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("x in a"),
            "unable to parse requirement: found 'a' expected: '('"
        );
        assert_eq!(
            parse_err("x in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("x in (a b)"),
            "unable to parse requirement: found 'b', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("x in (=)"),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            parse_err("x in (a,=)"),
            "unable to parse requirement: found '=', expected: ',', or identifier"
        );
        assert_eq!(parse_err("x,"), "found '', expected: identifier after ','");
        assert_eq!(
            parse_err("x,,y"),
            "found ',', expected: identifier after ','"
        );
        assert_eq!(
            parse_err(",x"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            parse_err("x a"),
            "unable to parse requirement: found 'a', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_err("x=(a)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(parse_err("x>a"), "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer");
        assert_eq!(parse_err("x>"), "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer");
        assert_eq!(
            parse_err("!x=a"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("x!!=a"),
            "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_err("x=>a"),
            "unable to parse requirement: found '>', expected: identifier"
        );
        assert_eq!(
            parse_err("a/b/c=d"),
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        );
        assert_eq!(
            parse_err(&format!("{}=a", "k".repeat(64))),
            format!("unable to parse requirement: <nil>: Invalid value: \"{}\": name part must be no more than 63 characters", "k".repeat(64))
        );
    }

    #[test]
    fn matching() {
        let set = labels(&[("x", "a"), ("y", "b"), ("n", "5")]);
        let yes = [
            "",
            "x=a",
            "x==a",
            "x!=b",
            "z!=a",
            "x in (a,b)",
            "z notin (a)",
            "x notin (b)",
            "x",
            "!z",
            "n>4",
            "n<6",
            "x=a,y=b",
            "x=a,!z",
        ];
        for s in yes {
            assert!(Selector::parse(s).is_ok_and(|sel| sel.matches(&set)), "{s}");
        }
        let no = [
            "x=b",
            "x!=a",
            "x in (b)",
            "x notin (a)",
            "z",
            "!x",
            "n>5",
            "n<5",
            "z>1",
            "x>1",
            "x=a,y=c",
            "z=",
            "z in (,)",
        ];
        for s in no {
            assert!(
                Selector::parse(s).is_ok_and(|sel| !sel.matches(&set)),
                "{s}"
            );
        }
        let empty = labels(&[]);
        assert!(Selector::parse("x notin (a)").is_ok_and(|s| s.matches(&empty)));
        assert!(!Selector::nothing().matches(&empty));
        assert!(Selector::everything().matches(&empty));
        let json_labels = json!({"app": "web", "weird": 3});
        assert!(Selector::parse("app=web,!weird").is_ok_and(|s| s.matches(&json_labels)));
        assert!(Selector::parse("app").is_ok_and(|s| !s.matches(&Value::Null)));
        let mut hm = HashMap::new();
        hm.insert("k".to_string(), "v".to_string());
        assert!(Selector::parse("k=v").is_ok_and(|s| s.matches(&hm)));
    }

    #[test]
    fn from_label_selector() {
        assert!(Selector::from_label_selector(&Value::Null)
            .is_ok_and(|s| s.matches_nothing() && !s.is_empty()));
        assert!(Selector::from_label_selector(&json!({})).is_ok_and(|s| s.is_empty()));
        assert!(
            Selector::from_label_selector(&json!({"matchLabels": {}})).is_ok_and(|s| s.is_empty())
        );
        let sel = Selector::from_label_selector(&json!({
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [
                {"key": "c", "operator": "In", "values": ["y", "x"]},
                {"key": "a0", "operator": "Exists"},
                {"key": "d", "operator": "DoesNotExist"},
                {"key": "e", "operator": "NotIn", "values": ["z"]}
            ]
        }));
        let sel = sel.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sel.to_string(), "a=1,a0,b=2,c in (x,y),!d,e notin (z)");
        assert!(sel.matches(&labels(&[("a", "1"), ("a0", ""), ("b", "2"), ("c", "x")])));
        assert!(!sel.matches(&labels(&[
            ("a", "1"),
            ("a0", ""),
            ("b", "2"),
            ("c", "x"),
            ("d", "")
        ])));
        assert_eq!(
            Selector::from_label_selector(
                &json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]})
            )
            .err()
            .map(|e| e.message),
            Some("\"Foo\" is not a valid label selector operator".to_string())
        );
        assert_eq!(
            Selector::from_label_selector(
                &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
            )
            .err()
            .map(|e| e.message),
            Some(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                    .to_string()
            )
        );
        assert_eq!(
            Selector::from_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})).err().map(|e| e.message),
            Some(r#"values: Invalid value: ["x"]: values set must be empty for exists and does not exist"#.to_string())
        );
        assert_eq!(
            Selector::from_label_selector(&json!({"matchLabels": {"a": "bad value"}})).err().map(|e| e.message),
            Some("values[0][a]: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string())
        );
        assert_eq!(
            Selector::from_label_selector(&json!({"matchLabels": {"-a": "x"}})).err().map(|e| e.message),
            Some("key: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string())
        );
    }

    #[test]
    fn requirement_validation_aggregates() {
        let err = Requirement::new("k", Operator::GreaterThan, vec!["a".into(), "b".into()]).err();
        assert_eq!(
            err.map(|e| e.message),
            Some(r#"[values: Invalid value: ["a","b"]: for 'Gt', 'Lt' operators, exactly one value is required, values[0]: Invalid value: "a": for 'Gt', 'Lt' operators, the value must be an integer, values[1]: Invalid value: "b": for 'Gt', 'Lt' operators, the value must be an integer]"#.to_string())
        );
        assert!(Requirement::new("k", Operator::Equals, vec!["v".into()]).is_ok());
    }

    #[test]
    fn helpers() {
        let sel = Selector::parse("a=1,b in (2),c in (3,4),d!=5").unwrap_or_default();
        assert_eq!(sel.requires_exact_match("a"), Some("1"));
        assert_eq!(sel.requires_exact_match("b"), Some("2"));
        assert_eq!(sel.requires_exact_match("c"), None);
        assert_eq!(sel.requires_exact_match("d"), None);
        assert_eq!(sel.requires_exact_match("z"), None);
        let set = labels(&[("b", "2"), ("a", "1")]);
        assert_eq!(Selector::from_set(&set).to_string(), "a=1,b=2");
        assert!(Selector::validated_from_set(&labels(&[("a", "x y")])).is_err());
        let added = Selector::everything().add_requirement(
            Requirement::new("z", Operator::Exists, vec![]).unwrap_or_else(|e| panic!("{e}")),
        );
        let added = added.add_requirement(
            Requirement::new("a", Operator::DoesNotExist, vec![]).unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(added.to_string(), "!a,z");
        assert_eq!(added.requirements().len(), 2);
        assert_eq!(added.requirements()[0].operator().as_str(), "!");
        assert_eq!(
            "x in (b,a)".parse::<Selector>().map(|s| s.to_string()).ok(),
            Some("x in (a,b)".to_string())
        );
    }

    #[test]
    fn label_selector_validation() {
        let p = Path::new("spec").child("selector");
        let errs = validate_label_selector(
            &json!({
                "matchLabels": {"app": "bad value"},
                "matchExpressions": [
                    {"key": "a", "operator": "In"},
                    {"key": "b", "operator": "Exists", "values": ["x"]},
                    {"key": "-c", "operator": "Foo"},
                    {"key": "d", "operator": "In", "values": ["ok", "not ok"]}
                ]
            }),
            false,
            &p,
        );
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 6);
        assert!(msgs[0]
            .starts_with("spec.selector.matchLabels: Invalid value: \"bad value\": a valid label"));
        assert_eq!(msgs[1], "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'");
        assert_eq!(msgs[2], "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
        assert_eq!(msgs[3], "spec.selector.matchExpressions[2].operator: Invalid value: \"Foo\": not a valid selector operator");
        assert!(msgs[4].starts_with(
            "spec.selector.matchExpressions[2].key: Invalid value: \"-c\": name part must consist"
        ));
        assert!(msgs[5].starts_with(
            "spec.selector.matchExpressions[3].values[1]: Invalid value: \"not ok\": a valid label"
        ));
        let relaxed = validate_label_selector(
            &json!({"matchExpressions": [{"key": "d", "operator": "In", "values": ["not ok"]}]}),
            true,
            &p,
        );
        assert!(relaxed.is_empty());
        assert!(validate_label_selector(&Value::Null, false, &p).is_empty());
    }
}
