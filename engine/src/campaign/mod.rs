//! Campaigns: their configuration ([`CampaignConfig`], parsed with
//! [`CampaignConfig::from_json`] and checked by [`CampaignConfig::validate`]) and their
//! lifecycle ([`transition`], the one function that decides every status change).
//!
//! This file also holds the calling-time vocabulary shared with the calling-window code:
//! [`LocalTime`], [`Weekday`], [`TimeRange`], [`Schedule`] and [`TimezonePolicy`].

use chrono::{NaiveTime, Timelike};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A text that names none of an enum's values (`"activ"` for a [`CampaignStatus`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected one of: {})", .expected.join(", "))]
pub struct UnknownVariant {
    /// What was being parsed (`outcome`, `campaign status`).
    pub kind: &'static str,
    /// The text as given.
    pub value: String,
    /// The accepted values.
    pub expected: &'static [&'static str],
}

/// Declares a fieldless enum whose JSON form, `as_str`, `Display` and `FromStr` all use
/// the same snake_case names, listed once.
macro_rules! str_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($kind:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case name used in JSON, the database and logs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::campaign::UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::campaign::UnknownVariant {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

mod abandonment;
mod allowlist;
mod config;
mod lifecycle;
mod validate;

pub use abandonment::{
    Abandonment, BUILT_IN_MESSAGE_VARS, DEFAULT_ABANDONMENT_MESSAGE, MAX_ABANDONMENT_MESSAGE_CHARS,
};
pub use allowlist::LivekitAllowlist;
pub use config::{
    AgentConfig, AudienceSpec, Budget, CampaignConfig, CampaignKind, Compliance, Objective,
    Outcome, Pacing, PacingMode, QualityThresholds, RetryPolicy, RetryRule, RetryableResult,
    ScriptConfig, SuccessDefinition,
};
pub use lifecycle::{
    CampaignStatus, Cause, Transition, TransitionError, allowed_causes, transition,
};
pub use validate::{MAX_ABANDONMENT_RATE, MAX_NAME_CHARS};

/// A wall-clock time of day in the callee's zone, written `"HH:MM"` (`"09:00"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalTime(NaiveTime);

impl LocalTime {
    /// `hour:minute`, or `None` past 23:59.
    pub fn new(hour: u32, minute: u32) -> Option<Self> {
        NaiveTime::from_hms_opt(hour, minute, 0).map(LocalTime)
    }

    /// The time as chrono sees it.
    pub fn time(self) -> NaiveTime {
        self.0
    }

    /// `h:m`, for constants that are known valid.
    pub(crate) const fn hm(hour: u32, minute: u32) -> Self {
        match NaiveTime::from_hms_opt(hour, minute, 0) {
            Some(t) => LocalTime(t),
            None => LocalTime(NaiveTime::MIN),
        }
    }
}

impl FromStr for LocalTime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
        s.split_once(':')
            .filter(|(h, m)| digits(h) && digits(m))
            .and_then(|(h, m)| LocalTime::new(h.parse().ok()?, m.parse().ok()?))
            .ok_or_else(|| format!("invalid time `{s}`: expected HH:MM between 00:00 and 23:59"))
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0.hour(), self.0.minute())
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

str_enum! {
    /// A day of the week, written in full and lowercase (`"monday"`).
    pub enum Weekday ("weekday") {
        /// Monday.
        Monday = "monday",
        /// Tuesday.
        Tuesday = "tuesday",
        /// Wednesday.
        Wednesday = "wednesday",
        /// Thursday.
        Thursday = "thursday",
        /// Friday.
        Friday = "friday",
        /// Saturday.
        Saturday = "saturday",
        /// Sunday.
        Sunday = "sunday",
    }
}

impl From<chrono::Weekday> for Weekday {
    fn from(day: chrono::Weekday) -> Self {
        Weekday::ALL[day.num_days_from_monday() as usize % 7]
    }
}

impl From<Weekday> for chrono::Weekday {
    fn from(day: Weekday) -> Self {
        use chrono::Weekday as W;
        [W::Mon, W::Tue, W::Wed, W::Thu, W::Fri, W::Sat, W::Sun][day as usize]
    }
}

/// A span of local time within one day, `start` < `end` (no wrap past midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// First minute inside the range.
    pub start: LocalTime,
    /// First minute after the range.
    pub end: LocalTime,
}

/// When calls may be placed, in the callee's local time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    /// Calling days; default monday to friday.
    pub days: Vec<Weekday>,
    /// Daily window start; default `"09:00"`.
    pub start: LocalTime,
    /// Daily window end (exclusive); default `"17:00"`.
    pub end: LocalTime,
    /// Do-not-disturb ranges inside the window (`[{"start":"12:00","end":"13:00"}]`);
    /// default none.
    pub do_not_disturb: Vec<TimeRange>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            days: Weekday::ALL[..5].to_vec(),
            start: LocalTime::hm(9, 0),
            end: LocalTime::hm(17, 0),
            do_not_disturb: Vec::new(),
        }
    }
}

/// Which timezone a contact's calling window is read in when neither the contact nor its
/// number gives one. The contact's zone and every zone of the number's region always
/// apply together (see `window`): a campaign cannot turn the number's region off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimezonePolicy {
    /// IANA zone used when nothing else gives one; default `"UTC"`.
    pub default_timezone: String,
    /// Must be `true` (the default): the number's region always applies, and validation
    /// refuses `false`. Kept so that stored configurations still read.
    pub use_number_region: bool,
}

impl Default for TimezonePolicy {
    fn default() -> Self {
        TimezonePolicy {
            default_timezone: "UTC".into(),
            use_number_region: true,
        }
    }
}

impl TimezonePolicy {
    /// The default zone; UTC when its name is not a zone.
    pub fn default_zone(&self) -> chrono_tz::Tz {
        crate::contact::parse_timezone(&self.default_timezone).unwrap_or(chrono_tz::UTC)
    }
}

/// Joins names for messages: `a`, `a or b`, `a, b or c`.
pub(crate) fn either(items: &[impl fmt::Display]) -> String {
    let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
    match texts.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_joins_one_two_or_many_names() {
        assert_eq!(either(&[] as &[&str]), "");
        assert_eq!(either(&["a"]), "a");
        assert_eq!(either(&["a", "b", "c"]), "a, b or c");
    }

    #[test]
    fn times_read_only_two_digit_hours_and_minutes() {
        assert_eq!(
            "07:05".parse::<LocalTime>().map(|t| t.to_string()),
            Ok("07:05".into())
        );
        for bad in [
            "7:05",
            "24:00",
            "12:60",
            "12:00:00",
            "",
            "ab:cd",
            "+1:00",
            "١٢:٠٠",
        ] {
            assert!(bad.parse::<LocalTime>().is_err(), "{bad}");
        }
        assert_eq!(
            LocalTime::new(9, 30).map(|t| t.time().to_string()),
            Some("09:30:00".into())
        );
    }

    #[test]
    fn weekdays_convert_to_and_from_chrono() {
        for day in Weekday::ALL {
            assert_eq!(Weekday::from(chrono::Weekday::from(*day)), *day);
        }
        assert_eq!(chrono::Weekday::from(Weekday::Sunday), chrono::Weekday::Sun);
    }

    #[test]
    fn the_default_zone_falls_back_to_utc() {
        let mut policy = TimezonePolicy {
            default_timezone: "Asia/Riyadh".into(),
            use_number_region: true,
        };
        assert_eq!(policy.default_zone(), chrono_tz::Asia::Riyadh);
        policy.default_timezone = "Mars/Base".into();
        assert_eq!(policy.default_zone(), chrono_tz::UTC);
    }

    #[test]
    fn an_unknown_variant_lists_what_is_accepted() {
        let e = "maybe".parse::<Outcome>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown outcome `maybe` (expected one of: interested, not_interested, callback, \
             do_not_call, voicemail, wrong_number)"
        );
    }
}
