//! The do-not-call list: exact numbers and prefix patterns (`+1900*`), tenant-wide.
//!
//! A number on the list is never dialed by any campaign of the tenant.

use crate::phone::{E164, PhoneError, Region};
use crate::{DncEntryId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether an entry blocks one number or every number starting with its digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DncKind {
    /// One number.
    Exact,
    /// Every number that starts with the pattern.
    Prefix,
}

impl DncKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DncKind::Exact => "exact",
            DncKind::Prefix => "prefix",
        }
    }
}

/// A do-not-call pattern: an E.164 number, or `+<digits>*` for a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DncPattern {
    kind: DncKind,
    /// `+` and digits.
    digits: String,
}

/// Why a do-not-call pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DncPatternError {
    /// The exact number is not a phone number.
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// The prefix is malformed.
    #[error(
        "{value:?} is not a prefix pattern: expected \"+\" then 1 to 14 digits then \"*\", e.g. \"+1900*\""
    )]
    BadPrefix {
        /// The value as given.
        value: String,
    },
}

impl DncPattern {
    /// Parses `+14155550123` (or a national number with a default region) as an exact
    /// entry, and `+1900*` as a prefix entry.
    pub fn parse(value: &str, default_region: Option<Region>) -> Result<Self, DncPatternError> {
        let trimmed = value.trim();
        if let Some(prefix) = trimmed.strip_suffix('*') {
            let digits: String = prefix
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
                .collect();
            let ok = digits.len() >= 2
                && digits.len() <= 15
                && digits.starts_with('+')
                && digits[1..].bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(DncPatternError::BadPrefix {
                    value: value.to_owned(),
                });
            }
            return Ok(DncPattern {
                kind: DncKind::Prefix,
                digits,
            });
        }
        let number = E164::parse(trimmed, default_region)?;
        Ok(DncPattern::exact(&number))
    }

    /// The entry for exactly this number.
    pub fn exact(number: &E164) -> Self {
        DncPattern {
            kind: DncKind::Exact,
            digits: number.as_str().to_owned(),
        }
    }

    /// Exact or prefix.
    pub fn kind(&self) -> DncKind {
        self.kind
    }

    /// The stored pattern, `+` and digits (without the `*`).
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Whether this pattern blocks `number`.
    pub fn matches(&self, number: &E164) -> bool {
        match self.kind {
            DncKind::Exact => number.as_str() == self.digits,
            DncKind::Prefix => number.as_str().starts_with(&self.digits),
        }
    }

    /// Rebuilds a pattern read from the database.
    pub(crate) fn from_stored(kind: &str, digits: String) -> Self {
        let kind = if kind == "prefix" {
            DncKind::Prefix
        } else {
            DncKind::Exact
        };
        DncPattern { kind, digits }
    }
}

impl fmt::Display for DncPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DncKind::Exact => f.write_str(&self.digits),
            DncKind::Prefix => write!(f, "{}*", self.digits),
        }
    }
}

impl Serialize for DncPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Every prefix of a number that a prefix entry could hold (`+1`, `+19`, ... the whole).
pub(crate) fn prefixes(number: &E164) -> Vec<&str> {
    let s = number.as_str();
    (2..=s.len()).map(|end| &s[..end]).collect()
}

/// A stored do-not-call entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DncEntry {
    /// Id.
    pub id: DncEntryId,
    /// Owner.
    pub tenant_id: TenantId,
    /// What it blocks.
    pub pattern: DncPattern,
    /// Why, if given.
    pub reason: Option<String>,
    /// Who added it: `api`, `import`, `agent` (a `do_not_call` outcome), ...
    pub source: String,
    /// Added.
    pub created_at: DateTime<Utc>,
}

/// One line of a bulk do-not-call list that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// The text as given.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses a bulk list: one number or prefix pattern per line (or the first column of a
/// CSV). Blank lines, `#` comments and a header line (`phone`, `number`, `pattern`) are
/// skipped. Returns the patterns and every refused line.
pub fn parse_list(text: &str, default_region: Option<Region>) -> (Vec<DncPattern>, Vec<LineError>) {
    let mut patterns = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let value = raw
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .trim();
        if value.is_empty() || value.starts_with('#') {
            continue;
        }
        if i == 0
            && matches!(
                value.to_ascii_lowercase().as_str(),
                "phone" | "number" | "pattern" | "phone_number"
            )
        {
            continue;
        }
        match DncPattern::parse(value, default_region) {
            Ok(p) => patterns.push(p),
            Err(e) => errors.push(LineError {
                line: i as u64 + 1,
                value: value.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
    (patterns, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> E164 {
        E164::parse(s, None).unwrap()
    }

    #[test]
    fn exact_patterns_block_only_their_number() {
        let p = DncPattern::parse("+1 415 555 2671", None).unwrap();
        assert_eq!(p.kind(), DncKind::Exact);
        assert!(p.matches(&num("+14155552671")));
        assert!(!p.matches(&num("+14155552672")));
    }

    #[test]
    fn prefix_patterns_block_every_number_that_starts_with_them() {
        let p = DncPattern::parse("+1 415*", None).unwrap();
        assert_eq!(p.to_string(), "+1415*");
        assert!(p.matches(&num("+14155552671")));
        assert!(!p.matches(&num("+12125552671")));
    }

    #[test]
    fn malformed_patterns_name_the_value() {
        for bad in ["1415*", "+*", "+14a*", "*", "+1234567890123456*"] {
            let err = DncPattern::parse(bad, None).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(DncPattern::parse("not a number", None).is_err());
    }

    #[test]
    fn bulk_lists_skip_headers_comments_and_blanks_and_report_bad_lines() {
        let text =
            "phone,reason\n+14155552671,asked\n\n# comment\n+1900*\nnope\n\"+442079460958\"\n";
        let (patterns, errors) = parse_list(text, None);
        let shown: Vec<String> = patterns.iter().map(ToString::to_string).collect();
        assert_eq!(shown, vec!["+14155552671", "+1900*", "+442079460958"]);
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].value.as_str()), (6, "nope"));
    }

    #[test]
    fn prefixes_cover_every_length() {
        let n = num("+14155552671");
        let p = prefixes(&n);
        assert_eq!(p.first(), Some(&"+1"));
        assert_eq!(p.last(), Some(&"+14155552671"));
        assert_eq!(p.len(), 11);
    }
}
