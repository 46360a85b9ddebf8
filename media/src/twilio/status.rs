//! Call status and answering-machine values as Twilio spells them on the wire.
//!
//! Both enums parse from any string without failing, so a value Twilio adds tomorrow is
//! carried as `Unknown(..)` instead of rejecting the whole callback or response.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Lifecycle state of a Twilio call (`status` in the REST API, `CallStatus` in callbacks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallStatus {
    /// Waiting in Twilio's queue (account calls-per-second limit).
    Queued,
    /// Twilio started dialling; seen only as a callback event.
    Initiated,
    /// The callee's phone is ringing.
    Ringing,
    /// Answered and connected.
    InProgress,
    /// Ended normally after being answered.
    Completed,
    /// The callee was busy.
    Busy,
    /// The call could not be placed.
    Failed,
    /// Rang until the timeout without an answer.
    NoAnswer,
    /// Hung up by us while queued or ringing.
    Canceled,
    /// A value this crate does not know, kept verbatim.
    Unknown(String),
}

impl CallStatus {
    /// The wire spelling, e.g. `in-progress`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::NoAnswer => "no-answer",
            Self::Canceled => "canceled",
            Self::Unknown(other) => other,
        }
    }

    /// True when the call is over and no further status will follow.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Busy | Self::Failed | Self::NoAnswer | Self::Canceled
        )
    }
}

impl From<&str> for CallStatus {
    fn from(value: &str) -> Self {
        match value {
            "queued" => Self::Queued,
            "initiated" => Self::Initiated,
            "ringing" => Self::Ringing,
            "in-progress" => Self::InProgress,
            "completed" => Self::Completed,
            "busy" => Self::Busy,
            "failed" => Self::Failed,
            "no-answer" => Self::NoAnswer,
            "canceled" => Self::Canceled,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

/// Who answered, as reported by Twilio's answering machine detection (`AnsweredBy`).
///
/// Twilio's literal `unknown` and any value this crate does not know both parse to
/// `Unknown(value)`, keeping the original text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnsweredBy {
    /// A person answered.
    Human,
    /// A machine answered; Twilio did not wait for the greeting to end.
    MachineStart,
    /// A machine answered and its greeting ended with a beep.
    MachineEndBeep,
    /// A machine answered and its greeting ended in silence.
    MachineEndSilence,
    /// A machine answered and its greeting ended some other way.
    MachineEndOther,
    /// A fax machine answered.
    Fax,
    /// Detection could not decide (`unknown`) or reported a value this crate does not know.
    Unknown(String),
}

impl AnsweredBy {
    /// The wire spelling, e.g. `machine_end_beep`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Human => "human",
            Self::MachineStart => "machine_start",
            Self::MachineEndBeep => "machine_end_beep",
            Self::MachineEndSilence => "machine_end_silence",
            Self::MachineEndOther => "machine_end_other",
            Self::Fax => "fax",
            Self::Unknown(other) => other,
        }
    }

    /// True for the answering-machine outcomes (`machine_*`); a fax is not counted.
    pub fn is_machine(&self) -> bool {
        matches!(
            self,
            Self::MachineStart
                | Self::MachineEndBeep
                | Self::MachineEndSilence
                | Self::MachineEndOther
        )
    }

    /// True when a person answered.
    pub fn is_human(&self) -> bool {
        matches!(self, Self::Human)
    }
}

impl From<&str> for AnsweredBy {
    fn from(value: &str) -> Self {
        match value {
            "human" => Self::Human,
            "machine_start" => Self::MachineStart,
            "machine_end_beep" => Self::MachineEndBeep,
            "machine_end_silence" => Self::MachineEndSilence,
            "machine_end_other" => Self::MachineEndOther,
            "fax" => Self::Fax,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

macro_rules! wire_string_impls {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok(Self::from(text.as_ref()))
            }
        }
    };
}

wire_string_impls!(CallStatus);
wire_string_impls!(AnsweredBy);

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: [&str; 9] = [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
    ];

    #[test]
    fn every_known_status_round_trips_through_its_wire_string() {
        for wire in STATUSES {
            let status = CallStatus::from(wire);
            assert!(!matches!(status, CallStatus::Unknown(_)), "{wire}");
            assert_eq!(status.as_str(), wire);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{wire}\"")
            );
        }
    }

    #[test]
    fn an_unknown_status_is_kept_verbatim_and_is_not_terminal() {
        let status: CallStatus = serde_json::from_str("\"teleported\"").unwrap();
        assert_eq!(status, CallStatus::Unknown("teleported".into()));
        assert_eq!(status.to_string(), "teleported");
        assert!(!status.is_terminal());
    }

    #[test]
    fn only_final_statuses_are_terminal() {
        let terminal: Vec<_> = STATUSES
            .iter()
            .filter(|s| CallStatus::from(**s).is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [&"completed", &"busy", &"failed", &"no-answer", &"canceled"]
        );
    }

    #[test]
    fn answered_by_parses_every_value_and_never_fails() {
        for wire in [
            "human",
            "machine_start",
            "machine_end_beep",
            "machine_end_silence",
            "machine_end_other",
            "fax",
            "unknown",
            "",
            "robot",
        ] {
            let value = AnsweredBy::from(wire);
            assert_eq!(value.as_str(), wire);
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(serde_json::from_str::<AnsweredBy>(&json).unwrap(), value);
        }
        assert_eq!(
            AnsweredBy::from("unknown"),
            AnsweredBy::Unknown("unknown".into())
        );
    }

    #[test]
    fn machines_are_machines_and_humans_and_faxes_are_not() {
        assert!(AnsweredBy::MachineEndBeep.is_machine());
        assert!(AnsweredBy::MachineStart.is_machine());
        assert!(!AnsweredBy::Human.is_machine());
        assert!(!AnsweredBy::Fax.is_machine());
        assert!(!AnsweredBy::from("unknown").is_machine());
        assert!(AnsweredBy::Human.is_human());
    }
}
