//! E.164 phone numbers. A value of [`E164`] is always a valid, normalized number.

use phonenumber::{Mode, PhoneNumber, country};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A phone number in E.164 form (`+14155550123`), validated by `phonenumber`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The text is not a phone number at all.
    #[error("{value:?} is not a phone number: {reason}")]
    Unparsable {
        /// The value as given.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// It parses but is not a valid number for its region.
    #[error("{value:?} is not a valid phone number for its region")]
    Invalid {
        /// The value as given.
        value: String,
    },
    /// The default region is not an ISO 3166 alpha-2 code.
    #[error("{value:?} is not a region code (expected ISO 3166 alpha-2, e.g. \"US\")")]
    UnknownRegion {
        /// The value as given.
        value: String,
    },
}

/// A default region used to read national-format numbers (`(415) 555-0123` in `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    /// Parses an ISO 3166 alpha-2 code such as `US` or `GB`.
    pub fn parse(code: &str) -> Result<Self, PhoneError> {
        code.trim()
            .to_ascii_uppercase()
            .parse::<country::Id>()
            .map(Region)
            .map_err(|_| PhoneError::UnknownRegion {
                value: code.to_owned(),
            })
    }

    /// The ISO code, e.g. `US`.
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl E164 {
    /// Parses a number in international form (`+1 415 555 0123`), or in national form
    /// when a default region is given.
    pub fn parse(value: &str, default_region: Option<Region>) -> Result<Self, PhoneError> {
        let number = Self::parse_number(value, default_region)?;
        Ok(E164(number.format().mode(Mode::E164).to_string()))
    }

    fn parse_number(
        value: &str,
        default_region: Option<Region>,
    ) -> Result<PhoneNumber, PhoneError> {
        let trimmed = value.trim();
        let number = phonenumber::parse(default_region.map(|r| r.0), trimmed).map_err(|e| {
            PhoneError::Unparsable {
                value: value.to_owned(),
                reason: e.to_string(),
            }
        })?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid {
                value: value.to_owned(),
            });
        }
        Ok(number)
    }

    /// The number as `+<digits>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region the number belongs to (used to derive a timezone), if known.
    pub fn region(&self) -> Option<Region> {
        let number = phonenumber::parse(None, &self.0).ok()?;
        number.country().id().map(Region)
    }

    /// Wraps a value read back from our own database, where it was stored normalized.
    /// Falls back to a full parse if the stored text is not what we wrote.
    pub fn from_stored(value: String) -> Result<Self, PhoneError> {
        if value.starts_with('+')
            && value.len() > 2
            && value[1..].bytes().all(|b| b.is_ascii_digit())
        {
            Ok(E164(value))
        } else {
            E164::parse(&value, None)
        }
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.0)
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for E164 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        E164::parse(&s, None).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_numbers_normalize_to_e164() {
        let n = E164::parse("+1 (415) 555-2671", None).unwrap();
        assert_eq!(n.as_str(), "+14155552671");
        let n = E164::parse("+44 20 7946 0958", None).unwrap();
        assert_eq!(n.as_str(), "+442079460958");
    }

    #[test]
    fn national_numbers_need_a_default_region() {
        let us = Region::parse("us").unwrap();
        assert_eq!(
            E164::parse("(415) 555-2671", Some(us)).unwrap().as_str(),
            "+14155552671"
        );
        let err = E164::parse("(415) 555-2671", None).unwrap_err();
        assert!(err.to_string().contains("(415) 555-2671"), "{err}");
    }

    #[test]
    fn invalid_numbers_name_the_value() {
        let err = E164::parse("+1 555", None).unwrap_err();
        assert!(err.to_string().contains("+1 555"), "{err}");
        let err = E164::parse("banana", None).unwrap_err();
        assert!(err.to_string().contains("banana"), "{err}");
        assert!(Region::parse("XX").is_err());
    }

    #[test]
    fn region_is_derived_from_the_number() {
        let n = E164::parse("+442079460958", None).unwrap();
        assert_eq!(n.region().unwrap().code(), "GB");
    }
}
