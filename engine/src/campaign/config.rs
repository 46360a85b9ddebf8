//! A campaign's configuration: every attribute a user sets, each with a documented
//! default, parsed from JSON with the path of any bad field.

use super::abandonment::Abandonment;
use super::{LocalTime, Schedule, TimezonePolicy};
use crate::{ContactListId, FieldError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

str_enum! {
    /// What kind of campaign; only voice exists today.
    #[derive(Default)]
    pub enum CampaignKind ("campaign type") {
        /// Outbound phone calls handled by an AI voice agent (the default).
        #[default]
        Voice = "voice",
    }
}

str_enum! {
    /// What the campaign is for; informs reporting and the agent's context.
    #[derive(Default)]
    pub enum Objective ("objective") {
        /// Book appointments or viewings.
        Bookings = "bookings",
        /// Renew expiring contracts or services.
        Renewals = "renewals",
        /// Qualify new leads.
        LeadGeneration = "lead_generation",
        /// Sell an upgrade or premium service.
        UpSell = "up_sell",
        /// Win back inactive customers.
        ReEngagement = "re_engagement",
        /// Confirm or reschedule pending appointments.
        AppointmentConfirmation = "appointment_confirmation",
        /// Anything else, described by `objective_note` (the default).
        #[default]
        Custom = "custom",
    }
}

str_enum! {
    /// How a call ended, as reported by the agent (or derived by the engine); shared by
    /// the whole engine.
    pub enum Outcome ("outcome") {
        /// The contact showed interest.
        Interested = "interested",
        /// The contact declined.
        NotInterested = "not_interested",
        /// The contact asked to be called back.
        Callback = "callback",
        /// The contact asked never to be called again: the number joins the tenant DNC list.
        DoNotCall = "do_not_call",
        /// A voicemail was reached.
        Voicemail = "voicemail",
        /// The number does not belong to the contact.
        WrongNumber = "wrong_number",
    }
}

str_enum! {
    /// An attempt result that the retry policy may retry.
    pub enum RetryableResult ("retryable result") {
        /// Rang out unanswered.
        NoAnswer = "no_answer",
        /// The line was busy or the callee declined.
        Busy = "busy",
        /// The call could not be placed or dropped before an outcome.
        Failed = "failed",
        /// An answering machine picked up.
        Voicemail = "voicemail",
    }
}

/// Who to call: an audience query and/or contact lists (contacts in any list or matching
/// the query). Default: neither, which [`CampaignConfig::readiness`] refuses.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudienceSpec {
    /// A JSON audience query, parsed by [`crate::audience`]; `None` by default.
    pub query: Option<serde_json::Value>,
    /// Contact lists to call; empty by default.
    pub lists: Vec<ContactListId>,
}

/// How one kind of result is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRule {
    /// Most attempts of a contact that may end with this result before it is given up.
    pub max_attempts: u32,
    /// Wait before the next attempt after this result, in minutes.
    pub delay_minutes: u32,
}

/// Retry policy; a rule given in part keeps its own defaults for the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawRetryPolicy")]
pub struct RetryPolicy {
    /// Total attempts per contact, all results together; default 3.
    pub max_attempts: u32,
    /// Minimum minutes between two attempts of one contact; default 60 (0 allowed).
    pub min_gap_minutes: u32,
    /// After no answer; default 3 attempts, 240 minutes apart.
    pub no_answer: RetryRule,
    /// After busy or declined; default 3 attempts, 30 minutes apart.
    pub busy: RetryRule,
    /// After a failed call; default 2 attempts, 60 minutes apart.
    pub failed: RetryRule,
    /// After reaching voicemail; default 2 attempts, 1440 minutes (a day) apart.
    pub voicemail: RetryRule,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let rule = |max_attempts, delay_minutes| RetryRule {
            max_attempts,
            delay_minutes,
        };
        RetryPolicy {
            max_attempts: 3,
            min_gap_minutes: 60,
            no_answer: rule(3, 240),
            busy: rule(3, 30),
            failed: rule(2, 60),
            voicemail: rule(2, 1440),
        }
    }
}

impl RetryPolicy {
    /// The rule for one kind of result.
    pub fn rule_for(&self, result: RetryableResult) -> &RetryRule {
        match result {
            RetryableResult::NoAnswer => &self.no_answer,
            RetryableResult::Busy => &self.busy,
            RetryableResult::Failed => &self.failed,
            RetryableResult::Voicemail => &self.voicemail,
        }
    }
}

/// [`RetryPolicy`] as written: every field optional, unknown fields refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetryPolicy {
    max_attempts: Option<u32>,
    min_gap_minutes: Option<u32>,
    no_answer: Option<RawRule>,
    busy: Option<RawRule>,
    failed: Option<RawRule>,
    voicemail: Option<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    max_attempts: Option<u32>,
    delay_minutes: Option<u32>,
}

impl From<RawRetryPolicy> for RetryPolicy {
    fn from(raw: RawRetryPolicy) -> Self {
        let d = RetryPolicy::default();
        let merge = |raw: Option<RawRule>, d: RetryRule| RetryRule {
            max_attempts: raw
                .as_ref()
                .and_then(|r| r.max_attempts)
                .unwrap_or(d.max_attempts),
            delay_minutes: raw.and_then(|r| r.delay_minutes).unwrap_or(d.delay_minutes),
        };
        RetryPolicy {
            max_attempts: raw.max_attempts.unwrap_or(d.max_attempts),
            min_gap_minutes: raw.min_gap_minutes.unwrap_or(d.min_gap_minutes),
            no_answer: merge(raw.no_answer, d.no_answer),
            busy: merge(raw.busy, d.busy),
            failed: merge(raw.failed, d.failed),
            voicemail: merge(raw.voicemail, d.voicemail),
        }
    }
}

/// Which agent answers the campaign's calls, chosen by `"mode"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentConfig {
    /// Twilio Media Streams relayed by Switchboard to an agent at a `ws://`/`wss://` URL.
    MediaStream {
        /// The agent's WebSocket URL.
        url: String,
    },
    /// Twilio Media Streams, with a LiveKit agent dispatched by name.
    Livekit {
        /// The LiveKit agent to dispatch.
        agent_name: String,
    },
    /// LiveKit dials through an outbound SIP trunk; media bypasses Switchboard.
    Sip {
        /// The LiveKit agent to dispatch.
        agent_name: String,
        /// The LiveKit outbound SIP trunk.
        trunk_id: String,
    },
}

/// What the agent is told, personalized per contact by [`crate::template`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptConfig {
    /// The script template; empty by default (refused by readiness).
    pub template: String,
    /// Campaign variables, usable as `{vars.key}`; none by default.
    pub variables: BTreeMap<String, String>,
    /// Placeholder name -> text used when a contact has no value; none by default.
    pub fallbacks: BTreeMap<String, String>,
}

/// Which outcomes count as a success for quality and reporting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuccessDefinition {
    /// Successful outcomes; default `["interested"]`.
    pub outcomes: Vec<Outcome>,
}

impl Default for SuccessDefinition {
    fn default() -> Self {
        SuccessDefinition {
            outcomes: vec![Outcome::Interested],
        }
    }
}

impl SuccessDefinition {
    /// Whether an outcome counts as a success.
    pub fn is_success(&self, outcome: Outcome) -> bool {
        self.outcomes.contains(&outcome)
    }
}

/// Quality floor under which the pacer pauses the campaign (cause `pacing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityThresholds {
    /// Lowest acceptable success rate (successes / connected calls); default none.
    pub min_success_rate: Option<f64>,
    /// Lowest acceptable connect rate (answered / finished attempts); default none.
    pub min_connect_rate: Option<f64>,
    /// Sliding window, in finished attempts; default 100.
    pub window: u32,
    /// Finished attempts needed before any judgement; default 30.
    pub min_sample: u32,
    /// Confidence that a rate is truly below threshold before pausing; default 0.95.
    pub confidence: f64,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        QualityThresholds {
            min_success_rate: None,
            min_connect_rate: None,
            window: 100,
            min_sample: 30,
            confidence: 0.95,
        }
    }
}

str_enum! {
    /// How lines are opened.
    #[derive(Default)]
    pub enum PacingMode ("pacing mode") {
        /// Predictive: lines are opened ahead of free agents from the measured answer rate,
        /// ring and handle times, under the abandonment target (the default).
        #[default]
        Predictive = "predictive",
        /// Progressive: one line per free agent session; nobody is ever abandoned for want
        /// of an agent.
        Progressive = "progressive",
    }
}

/// How the campaign paces its dialing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Pacing {
    /// Predictive or progressive; default `predictive`.
    pub mode: PacingMode,
    /// Agent sessions the campaign may hold at once (the agent server's capacity);
    /// default none: as many as `max_concurrent_calls`.
    pub agent_sessions: Option<u32>,
}

/// A spending cap; the campaign stops dialing when it is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Cap in the currency's minor unit (cents); required, > 0.
    pub cap_cents: i64,
    /// ISO 4217 code; default `"USD"`.
    #[serde(default = "usd")]
    pub currency: String,
}

fn usd() -> String {
    "USD".into()
}

/// Regulatory settings. The tenant do-not-call list and contact opt-outs ALWAYS apply:
/// there is deliberately no switch to disable them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Compliance {
    /// Dial only contacts with recorded consent; default `false`.
    pub consent_required: bool,
    /// Earliest local time any call may be placed; default `"08:00"` (may only narrow).
    pub legal_window_start: LocalTime,
    /// Latest local time (exclusive); default `"21:00"` (may only narrow).
    pub legal_window_end: LocalTime,
}

impl Default for Compliance {
    fn default() -> Self {
        Compliance {
            consent_required: false,
            legal_window_start: LocalTime::hm(8, 0),
            legal_window_end: LocalTime::hm(21, 0),
        }
    }
}

/// Everything a user configures about a campaign. `{}` is a valid (if unready) document:
/// every field has a default, and unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignConfig {
    /// Display name, 1 to 200 characters; empty by default (refused by validation).
    pub name: String,
    /// Campaign type, JSON `"type"`; default `voice`.
    #[serde(rename = "type")]
    pub kind: CampaignKind,
    /// Objective; default `custom`.
    pub objective: Objective,
    /// Free text describing the objective; default none.
    pub objective_note: Option<String>,
    /// When the scheduler activates it (RFC 3339); default none: started by the user.
    pub starts_at: Option<DateTime<Utc>>,
    /// When it completes even with contacts left (RFC 3339); default none.
    pub ends_at: Option<DateTime<Utc>>,
    /// Who to call.
    pub audience: AudienceSpec,
    /// Calling days, hours and do-not-disturb ranges.
    pub schedule: Schedule,
    /// How the callee's timezone is chosen.
    pub timezone: TimezonePolicy,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// 1 to 10, higher dials first when campaigns share capacity; default 5.
    pub priority: i32,
    /// Live calls at once; default 10.
    pub max_concurrent_calls: u32,
    /// Attempts per day (campaign timezone: `timezone.default_timezone`); default none.
    pub daily_cap: Option<u32>,
    /// Dials per minute; default 60, `null` for no campaign limit.
    pub max_calls_per_minute: Option<u32>,
    /// The agent; default none (refused by readiness).
    pub agent: Option<AgentConfig>,
    /// Script template, variables and fallbacks.
    pub script: ScriptConfig,
    /// Successful outcomes.
    pub success: SuccessDefinition,
    /// Auto-pause thresholds.
    pub quality: QualityThresholds,
    /// Abandonment limits.
    pub abandonment: Abandonment,
    /// Dialing mode and agent capacity.
    pub pacing: Pacing,
    /// Spending cap; default none.
    pub budget: Option<Budget>,
    /// Consent and legal calling window.
    pub compliance: Compliance,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            name: String::new(),
            kind: CampaignKind::Voice,
            objective: Objective::Custom,
            objective_note: None,
            starts_at: None,
            ends_at: None,
            audience: AudienceSpec::default(),
            schedule: Schedule::default(),
            timezone: TimezonePolicy::default(),
            retry: RetryPolicy::default(),
            priority: 5,
            max_concurrent_calls: 10,
            daily_cap: None,
            max_calls_per_minute: Some(60),
            agent: None,
            script: ScriptConfig::default(),
            success: SuccessDefinition::default(),
            quality: QualityThresholds::default(),
            abandonment: Abandonment::default(),
            pacing: Pacing::default(),
            budget: None,
            compliance: Compliance::default(),
        }
    }
}

impl CampaignConfig {
    /// Agent sessions the pacer may fill: `pacing.agent_sessions`, at most
    /// `max_concurrent_calls`.
    pub fn agent_sessions(&self) -> u32 {
        self.pacing
            .agent_sessions
            .unwrap_or(self.max_concurrent_calls)
            .min(self.max_concurrent_calls)
    }

    /// Parses and validates a JSON document. A malformed document yields one error at the
    /// path of the first bad field (`retry.busy.delay_minutes`); a well-formed one yields
    /// every validation problem.
    pub fn from_json(value: serde_json::Value) -> Result<CampaignConfig, Vec<FieldError>> {
        if !value.is_object() {
            let found = match value {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(vec![FieldError::new(
                "(root)",
                format!("expected a JSON object, found {found}"),
            )]);
        }
        let config: CampaignConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "(root)".to_owned()
            } else {
                path
            };
            vec![FieldError::new(field, e.into_inner().to_string())]
        })?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error_of(value: serde_json::Value) -> FieldError {
        let errors = CampaignConfig::from_json(value).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn an_empty_document_takes_every_documented_default() {
        let parsed: CampaignConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(parsed, CampaignConfig::default());
        let documented = json!({
            "name": "", "type": "voice", "objective": "custom", "objective_note": null,
            "starts_at": null, "ends_at": null,
            "audience": {"query": null, "lists": []},
            "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                         "start": "09:00", "end": "17:00", "do_not_disturb": []},
            "timezone": {"default_timezone": "UTC", "use_number_region": true},
            "retry": {"max_attempts": 3, "min_gap_minutes": 60,
                      "no_answer": {"max_attempts": 3, "delay_minutes": 240},
                      "busy": {"max_attempts": 3, "delay_minutes": 30},
                      "failed": {"max_attempts": 2, "delay_minutes": 60},
                      "voicemail": {"max_attempts": 2, "delay_minutes": 1440}},
            "priority": 5, "max_concurrent_calls": 10, "daily_cap": null, "max_calls_per_minute": 60,
            "agent": null,
            "script": {"template": "", "variables": {}, "fallbacks": {}},
            "success": {"outcomes": ["interested"]},
            "quality": {"min_success_rate": null, "min_connect_rate": null,
                        "window": 100, "min_sample": 30, "confidence": 0.95},
            "abandonment": {"target_rate": 0.02, "max_rate": 0.03, "keep_agent_if_late": false,
                            "message": crate::campaign::DEFAULT_ABANDONMENT_MESSAGE},
            "pacing": {"mode": "predictive", "agent_sessions": null},
            "budget": null,
            "compliance": {"consent_required": false,
                           "legal_window_start": "08:00", "legal_window_end": "21:00"}
        });
        assert_eq!(
            serde_json::to_value(CampaignConfig::default()).unwrap(),
            documented
        );
    }

    #[test]
    fn a_full_document_round_trips_through_json() {
        let doc = json!({
            "name": "Q4 renewals", "type": "voice", "objective": "appointment_confirmation",
            "objective_note": "confirm viewings", "starts_at": "2025-01-06T09:00:00Z",
            "ends_at": "2025-01-31T17:00:00+03:00",
            "audience": {"query": {"neighborhoods": ["mlaqa", "taadhi"]}, "lists": [4, 7]},
            "schedule": {"days": ["monday", "saturday"], "start": "10:00", "end": "18:30",
                         "do_not_disturb": [{"start": "12:00", "end": "13:00"}]},
            "timezone": {"default_timezone": "Asia/Riyadh", "use_number_region": true},
            "retry": {"max_attempts": 5, "busy": {"max_attempts": 4}},
            "priority": 8, "max_concurrent_calls": 50, "daily_cap": 1000, "max_calls_per_minute": null,
            "agent": {"mode": "sip", "agent_name": "sarah", "trunk_id": "ST_1"},
            "script": {"template": "Hello {name|there}, {vars.offer}", "variables": {"offer": "10%"},
                       "fallbacks": {"name": "friend"}},
            "success": {"outcomes": ["interested", "callback"]},
            "quality": {"min_success_rate": 0.1, "min_connect_rate": 0.2},
            "abandonment": {"target_rate": 0.01, "keep_agent_if_late": true},
            "budget": {"cap_cents": 50000},
            "compliance": {"consent_required": true, "legal_window_start": "09:00"}
        });
        let c = CampaignConfig::from_json(doc).unwrap();
        let busy = c.retry.rule_for(RetryableResult::Busy);
        assert_eq!(
            busy,
            &RetryRule {
                max_attempts: 4,
                delay_minutes: 30
            }
        );
        assert_eq!(c.audience.lists, [ContactListId(4), ContactListId(7)]);
        assert_eq!(c.max_calls_per_minute, None);
        assert_eq!(c.budget.as_ref().map(|b| b.currency.as_str()), Some("USD"));
        let ends_at = c.ends_at.map(|t| t.to_rfc3339());
        assert_eq!(ends_at.as_deref(), Some("2025-01-31T14:00:00+00:00"));
        let again = CampaignConfig::from_json(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn a_mistyped_nested_field_is_reported_at_its_path() {
        let e = error_of(json!({"retry": {"busy": {"delay_minutes": "soon"}}}));
        assert_eq!(e.field, "retry.busy.delay_minutes");
        assert!(e.reason.contains("\"soon\""), "{}", e.reason);
        let dnd = json!([{"start": "12:00", "end": "12:30"}, {"start": "x", "end": "13:00"}]);
        let e = error_of(json!({"schedule": {"do_not_disturb": dnd}}));
        assert_eq!(e.field, "schedule.do_not_disturb[1].start");
        assert_eq!(
            e.reason,
            "invalid time `x`: expected HH:MM between 00:00 and 23:59"
        );
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_name() {
        let e = error_of(json!({"retry": {"max_atempts": 2}}));
        assert_eq!(e.field, "retry.max_atempts");
        assert!(
            e.reason.starts_with("unknown field `max_atempts`"),
            "{}",
            e.reason
        );
        assert_eq!(error_of(json!({"nmae": "x"})).field, "nmae");
        let agent = json!({"mode": "livekit", "agent_name": "a", "url": "ws://x"});
        let e = error_of(json!({ "agent": agent }));
        assert!(e.reason.contains("unknown field `url`"), "{}", e.reason);
        let e = error_of(json!([1]));
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("(root)", "expected a JSON object, found an array")
        );
    }

    #[test]
    fn enums_read_their_snake_case_names_and_refuse_others() {
        let e = error_of(json!({"objective": "upsell"}));
        assert_eq!(e.field, "objective");
        assert!(e.reason.contains("up_sell"), "{}", e.reason);
        let e = error_of(json!({"schedule": {"days": ["monday", "Tue"]}}));
        assert_eq!(e.field, "schedule.days[1]");
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(*o));
            assert_eq!(serde_json::to_value(o).unwrap(), json!(o.as_str()));
        }
        assert_eq!("up_sell".parse::<Objective>(), Ok(Objective::UpSell));
        assert_eq!("no_answer".parse(), Ok(RetryableResult::NoAnswer));
        assert_eq!("voice".parse(), Ok(CampaignKind::Voice));
    }

    #[test]
    fn success_counts_only_the_configured_outcomes() {
        let s = SuccessDefinition {
            outcomes: vec![Outcome::Interested, Outcome::Callback],
        };
        assert!(s.is_success(Outcome::Callback) && !s.is_success(Outcome::Voicemail));
    }
}
