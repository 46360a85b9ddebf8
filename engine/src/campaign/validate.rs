//! Validation of a [`CampaignConfig`]: every problem at once, each at its field path.

use super::config::{AgentConfig, CampaignConfig, Compliance};
use super::{LocalTime, Schedule};
use crate::FieldError;
use crate::template::{Source, Template};

/// Hard regulatory cap on the abandonment rate.
pub const MAX_ABANDONMENT_RATE: f64 = 0.03;
/// Longest campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Collects problems.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    /// Records a problem at `field` unless `ok`.
    fn check(&mut self, ok: bool, field: impl Into<String>, reason: impl FnOnce() -> String) {
        if !ok {
            self.0.push(FieldError::new(field, reason()));
        }
    }

    /// Checks that `value` lies in `min..=max`.
    fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        let reason = || format!("{value} is out of range: expected {min} to {max}");
        self.check((min..=max).contains(&value), field, reason);
    }

    /// Checks that a rate lies in `[0, 1]`.
    fn rate(&mut self, field: &str, value: f64) {
        let reason = || format!("{value} is not a rate between 0 and 1");
        self.check((0.0..=1.0).contains(&value), field, reason);
    }

    fn into_result(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

impl CampaignConfig {
    /// Checks every rule a saved campaign must meet; returns all problems at once. The
    /// audience query itself is checked by [`crate::audience`], not here.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut p = Problems::default();
        self.check_basics(&mut p);
        check_schedule(&mut p, &self.schedule, &self.compliance);
        self.check_limits(&mut p);
        self.check_quality(&mut p);
        self.check_content(&mut p);
        p.into_result()
    }

    /// What must also be filled before a draft may be scheduled: an audience (a query or
    /// a list), an agent and a non-empty script. Includes every [`Self::validate`] error.
    pub fn readiness(&self) -> Result<(), Vec<FieldError>> {
        let mut p = Problems(self.validate().err().unwrap_or_default());
        let has_query = self.audience.query.as_ref().is_some_and(|q| !q.is_null());
        p.check(
            has_query || !self.audience.lists.is_empty(),
            "audience",
            || "no audience: give a query or at least one contact list".into(),
        );
        p.check(self.agent.is_some(), "agent", || {
            "no agent is configured".into()
        });
        p.check(
            !self.script.template.trim().is_empty(),
            "script.template",
            || "the script template is empty".into(),
        );
        p.into_result()
    }

    fn check_basics(&self, p: &mut Problems) {
        let name = self.name.trim();
        p.check(!name.is_empty(), "name", || "the name is empty".into());
        let chars = self.name.chars().count();
        p.check(chars <= MAX_NAME_CHARS, "name", || {
            format!("the name is {chars} characters long: at most {MAX_NAME_CHARS} allowed")
        });
        if let (Some(start), Some(end)) = (self.starts_at, self.ends_at) {
            p.check(end > start, "ends_at", || {
                format!(
                    "{} is not after starts_at {}",
                    end.to_rfc3339(),
                    start.to_rfc3339()
                )
            });
        }
        let tz = &self.timezone.default_timezone;
        p.check(
            tz.parse::<chrono_tz::Tz>().is_ok(),
            "timezone.default_timezone",
            || format!("`{tz}` is not an IANA timezone (e.g. `America/New_York`)"),
        );
        p.check(
            self.timezone.use_number_region,
            "timezone.use_number_region",
            || {
                "false is not allowed: the number's own local time always applies (omit the field)"
                    .to_owned()
            },
        );
        p.range("priority", self.priority.into(), 1, 10);
    }

    fn check_limits(&self, p: &mut Problems) {
        let r = &self.retry;
        p.range("retry.max_attempts", r.max_attempts.into(), 1, 20);
        for (kind, rule) in [
            ("no_answer", &r.no_answer),
            ("busy", &r.busy),
            ("failed", &r.failed),
            ("voicemail", &r.voicemail),
        ] {
            p.range(
                &format!("retry.{kind}.max_attempts"),
                rule.max_attempts.into(),
                1,
                20,
            );
            let delay = rule.delay_minutes;
            p.check(delay >= 1, format!("retry.{kind}.delay_minutes"), || {
                format!("{delay} is too short: at least 1 minute")
            });
        }
        p.range(
            "max_concurrent_calls",
            self.max_concurrent_calls.into(),
            1,
            10_000,
        );
        if let Some(sessions) = self.pacing.agent_sessions {
            let max = self.max_concurrent_calls;
            p.check(
                sessions >= 1 && sessions <= max,
                "pacing.agent_sessions",
                || format!("{sessions} must be at least 1 and at most max_concurrent_calls {max}"),
            );
        }
        if let Some(cap) = self.daily_cap {
            p.check(cap >= 1, "daily_cap", || {
                format!("{cap} must be at least 1 (omit it for no cap)")
            });
        }
        if let Some(rate) = self.max_calls_per_minute {
            p.range("max_calls_per_minute", rate.into(), 1, 100_000);
        }
        if let Some(budget) = &self.budget {
            let cap = budget.cap_cents;
            p.check(cap > 0, "budget.cap_cents", || {
                format!("{cap} must be greater than 0")
            });
            let cur = &budget.currency;
            let iso = cur.len() == 3 && cur.bytes().all(|b| b.is_ascii_uppercase());
            p.check(iso, "budget.currency", || {
                format!("`{cur}` is not an ISO 4217 code (three uppercase letters, e.g. `USD`)")
            });
        }
    }

    fn check_quality(&self, p: &mut Problems) {
        let q = &self.quality;
        if let Some(rate) = q.min_success_rate {
            p.rate("quality.min_success_rate", rate);
        }
        if let Some(rate) = q.min_connect_rate {
            p.rate("quality.min_connect_rate", rate);
        }
        let c = q.confidence;
        p.check(c > 0.5 && c < 1.0, "quality.confidence", || {
            format!("{c} is out of range: expected more than 0.5 and less than 1")
        });
        let (window, sample) = (q.window, q.min_sample);
        p.check(sample >= 1, "quality.min_sample", || {
            format!("{sample} must be at least 1")
        });
        p.check(window >= sample, "quality.window", || {
            format!("{window} is smaller than quality.min_sample {sample}")
        });
        let a = &self.abandonment;
        let (target, max) = (a.target_rate, a.max_rate);
        p.check(
            target > 0.0 && target <= max,
            "abandonment.target_rate",
            || format!("{target} must be greater than 0 and at most abandonment.max_rate {max}"),
        );
        p.check(
            (0.0..=MAX_ABANDONMENT_RATE).contains(&max),
            "abandonment.max_rate",
            || format!("{max} is above the regulatory cap of {MAX_ABANDONMENT_RATE}"),
        );
        p.0.extend(a.message_problems(&self.script.variables, &self.script.fallbacks));
        let outcomes = &self.success.outcomes;
        p.check(!outcomes.is_empty(), "success.outcomes", || {
            "no outcome counts as success".into()
        });
        for (i, o) in outcomes.iter().enumerate() {
            p.check(
                !outcomes[..i].contains(o),
                format!("success.outcomes[{i}]"),
                || format!("`{o}` is listed twice"),
            );
        }
    }

    fn check_content(&self, p: &mut Problems) {
        match &self.agent {
            Some(AgentConfig::MediaStream { url }) => {
                let host = url
                    .strip_prefix("wss://")
                    .or_else(|| url.strip_prefix("ws://"));
                let ok = host.is_some_and(|h| !h.is_empty() && !h.contains(char::is_whitespace));
                p.check(ok, "agent.url", || {
                    format!("`{url}` is not a ws:// or wss:// url")
                });
            }
            Some(AgentConfig::Livekit { agent_name }) => {
                non_empty(p, "agent.agent_name", agent_name)
            }
            Some(AgentConfig::Sip {
                agent_name,
                trunk_id,
            }) => {
                non_empty(p, "agent.agent_name", agent_name);
                non_empty(p, "agent.trunk_id", trunk_id);
            }
            None => {}
        }
        let script = &self.script;
        for (name, values) in [
            ("script.variables", &script.variables),
            ("script.fallbacks", &script.fallbacks),
        ] {
            for (key, reason) in crate::template::check_values(values) {
                let field = key.map_or_else(|| name.to_owned(), |k| format!("{name}.{k}"));
                p.0.push(FieldError::new(field, reason));
            }
        }
        match Template::parse(&script.template) {
            Err(e) => p.0.push(FieldError::new("script.template", e.to_string())),
            Ok(template) => {
                for ph in template.placeholders() {
                    let Source::Var(key) = &ph.source else {
                        continue;
                    };
                    let known = script.variables.contains_key(key)
                        || ph.fallback.is_some()
                        || script.fallbacks.contains_key(&ph.name);
                    p.check(known, "script.template", || {
                        format!("`{{{}}}` uses campaign variable `{key}`, which script.variables does not define", ph.name)
                    });
                }
            }
        }
    }
}

fn non_empty(p: &mut Problems, field: &str, value: &str) {
    p.check(!value.trim().is_empty(), field, || {
        "the value is empty".into()
    });
}

/// Days, window, do-not-disturb ranges and the legal window they must sit inside.
fn check_schedule(p: &mut Problems, s: &Schedule, c: &Compliance) {
    p.check(!s.days.is_empty(), "schedule.days", || {
        "no calling day is selected".into()
    });
    for (i, day) in s.days.iter().enumerate() {
        p.check(
            !s.days[..i].contains(day),
            format!("schedule.days[{i}]"),
            || format!("`{day}` is listed twice"),
        );
    }
    let (legal_start, legal_end) = (c.legal_window_start, c.legal_window_end);
    let (widest_start, widest_end) = (LocalTime::hm(8, 0), LocalTime::hm(21, 0));
    p.check(
        legal_start >= widest_start,
        "compliance.legal_window_start",
        || {
            format!(
                "{legal_start} is earlier than {widest_start}: the legal window may only narrow"
            )
        },
    );
    p.check(
        legal_end <= widest_end,
        "compliance.legal_window_end",
        || format!("{legal_end} is later than {widest_end}: the legal window may only narrow"),
    );
    p.check(
        legal_start < legal_end,
        "compliance.legal_window_end",
        || format!("{legal_end} is not after compliance.legal_window_start {legal_start}"),
    );
    p.check(s.start < s.end, "schedule.end", || {
        format!("{} is not after schedule.start {}", s.end, s.start)
    });
    p.check(s.start >= legal_start, "schedule.start", || {
        format!(
            "{} is before the legal calling window opens at {legal_start}",
            s.start
        )
    });
    p.check(s.end <= legal_end, "schedule.end", || {
        format!(
            "{} is after the legal calling window closes at {legal_end}",
            s.end
        )
    });
    for (i, range) in s.do_not_disturb.iter().enumerate() {
        p.check(
            range.start < range.end,
            format!("schedule.do_not_disturb[{i}].end"),
            || {
                format!(
                    "{} is not after start {} (split a range that crosses midnight in two)",
                    range.end, range.start
                )
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::{Budget, Outcome, TimeRange, Weekday};
    use serde_json::json;

    fn ready() -> CampaignConfig {
        let doc = json!({
            "name": "Riyadh leads",
            "audience": {"query": {"neighborhoods": ["mlaqa", "taadhi"]}},
            "agent": {"mode": "media_stream", "url": "wss://agent.example/stream"},
            "script": {"template": "Hello {name|there}"}
        });
        CampaignConfig::from_json(doc).unwrap()
    }

    fn fields(result: Result<(), Vec<FieldError>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn reason(result: Result<(), Vec<FieldError>>, field: &str) -> String {
        let errors = result.err().unwrap_or_default();
        let found = errors.iter().find(|e| e.field == field);
        found
            .map(|e| e.reason.clone())
            .unwrap_or_else(|| panic!("no error at {field}: {errors:?}"))
    }

    fn at(t: &str) -> LocalTime {
        t.parse().unwrap()
    }

    #[test]
    fn the_defaults_with_a_name_are_valid_and_a_complete_draft_is_ready() {
        let c = CampaignConfig {
            name: "x".into(),
            ..CampaignConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(ready().readiness(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path() {
        let mut c = CampaignConfig::default();
        c.schedule.days.clear();
        c.schedule.do_not_disturb = vec![
            TimeRange {
                start: at("12:00"),
                end: at("13:00"),
            },
            TimeRange {
                start: at("14:00"),
                end: at("13:00"),
            },
        ];
        c.quality.min_success_rate = Some(1.5);
        c.priority = 0;
        c.retry.busy.delay_minutes = 0;
        c.retry.min_gap_minutes = 0;
        assert_eq!(
            fields(c.validate()),
            [
                "name",
                "priority",
                "schedule.days",
                "schedule.do_not_disturb[1].end",
                "retry.busy.delay_minutes",
                "quality.min_success_rate"
            ]
        );
        assert_eq!(
            reason(c.validate(), "quality.min_success_rate"),
            "1.5 is not a rate between 0 and 1"
        );
        assert_eq!(
            reason(c.validate(), "priority"),
            "0 is out of range: expected 1 to 10"
        );
    }

    #[test]
    fn a_schedule_can_never_reach_outside_the_legal_window() {
        let mut c = ready();
        c.schedule.start = at("07:30");
        c.schedule.end = at("21:30");
        assert_eq!(
            reason(c.validate(), "schedule.start"),
            "07:30 is before the legal calling window opens at 08:00"
        );
        assert_eq!(
            reason(c.validate(), "schedule.end"),
            "21:30 is after the legal calling window closes at 21:00"
        );
        c.compliance.legal_window_start = at("06:00");
        c.compliance.legal_window_end = at("23:00");
        let f = fields(c.validate());
        assert!(
            f.contains(&"compliance.legal_window_start".into())
                && f.contains(&"compliance.legal_window_end".into()),
            "{f:?}"
        );
        let mut narrow = ready();
        narrow.compliance.legal_window_start = at("10:00");
        assert_eq!(fields(narrow.validate()), ["schedule.start"]);
    }

    #[test]
    fn days_must_be_distinct_and_the_window_must_be_forward() {
        let mut c = ready();
        c.schedule.days = vec![Weekday::Monday, Weekday::Monday];
        c.schedule.start = at("17:00");
        c.schedule.end = at("09:00");
        assert_eq!(fields(c.validate()), ["schedule.days[1]", "schedule.end"]);
        assert_eq!(
            reason(c.validate(), "schedule.days[1]"),
            "`monday` is listed twice"
        );
    }

    #[test]
    fn turning_the_numbers_region_off_is_refused() {
        let mut c = ready();
        c.timezone.use_number_region = false;
        assert_eq!(fields(c.validate()), ["timezone.use_number_region"]);
        assert!(reason(c.validate(), "timezone.use_number_region").contains("false"));
    }

    #[test]
    fn names_times_and_timezones_are_checked() {
        let mut c = ready();
        c.name = "x".repeat(201);
        c.timezone.default_timezone = "Mars/Olympus".into();
        c.starts_at = Some("2025-02-01T00:00:00Z".parse().unwrap());
        c.ends_at = Some("2025-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(
            fields(c.validate()),
            ["name", "ends_at", "timezone.default_timezone"]
        );
        assert_eq!(
            reason(c.validate(), "name"),
            "the name is 201 characters long: at most 200 allowed"
        );
        assert!(reason(c.validate(), "timezone.default_timezone").contains("`Mars/Olympus`"));
        c.name = "é".repeat(200);
        assert!(!fields(c.validate()).contains(&"name".to_string()));
    }

    #[test]
    fn limits_must_be_within_their_ranges() {
        let mut c = ready();
        c.retry.max_attempts = 21;
        c.retry.voicemail.max_attempts = 0;
        c.max_concurrent_calls = 0;
        c.daily_cap = Some(0);
        c.max_calls_per_minute = Some(100_001);
        c.budget = Some(Budget {
            cap_cents: 0,
            currency: "usd".into(),
        });
        let expected = [
            "retry.max_attempts",
            "retry.voicemail.max_attempts",
            "max_concurrent_calls",
            "daily_cap",
            "max_calls_per_minute",
            "budget.cap_cents",
            "budget.currency",
        ];
        assert_eq!(fields(c.validate()), expected);
    }

    #[test]
    fn agent_sessions_must_fit_within_max_concurrency() {
        let mut c = CampaignConfig {
            name: "Spring".into(),
            max_concurrent_calls: 20,
            ..CampaignConfig::default()
        };
        c.pacing.agent_sessions = Some(21);
        let errors = c.validate().unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "pacing.agent_sessions");
        assert!(errors[0].reason.contains("21"), "{:?}", errors[0]);
        c.pacing.agent_sessions = Some(0);
        assert_eq!(c.validate().unwrap_err()[0].field, "pacing.agent_sessions");
        c.pacing.agent_sessions = Some(20);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.agent_sessions(), 20);
    }

    #[test]
    fn quality_and_abandonment_figures_are_checked() {
        let mut c = ready();
        c.quality.min_connect_rate = Some(-0.1);
        c.quality.confidence = 0.5;
        c.quality.min_sample = 0;
        c.abandonment.target_rate = 0.0;
        c.abandonment.max_rate = 0.05;
        c.success.outcomes = vec![];
        let expected = [
            "quality.min_connect_rate",
            "quality.confidence",
            "quality.min_sample",
            "abandonment.target_rate",
            "abandonment.max_rate",
            "success.outcomes",
        ];
        assert_eq!(fields(c.validate()), expected);
        let mut c = ready();
        c.quality.window = 10;
        c.abandonment.target_rate = 0.03;
        c.abandonment.max_rate = 0.025;
        c.success.outcomes = vec![Outcome::Callback, Outcome::Callback];
        assert_eq!(
            fields(c.validate()),
            [
                "quality.window",
                "abandonment.target_rate",
                "success.outcomes[1]"
            ]
        );
    }

    #[test]
    fn agents_need_a_websocket_url_or_names() {
        let mut c = ready();
        for url in ["https://agent.example", "ws://", "wss://a b"] {
            c.agent = Some(AgentConfig::MediaStream { url: url.into() });
            assert_eq!(fields(c.validate()), ["agent.url"], "{url}");
        }
        c.agent = Some(AgentConfig::Sip {
            agent_name: " ".into(),
            trunk_id: String::new(),
        });
        assert_eq!(fields(c.validate()), ["agent.agent_name", "agent.trunk_id"]);
        c.agent = Some(AgentConfig::Livekit {
            agent_name: "sarah".into(),
        });
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn the_script_must_parse_and_its_variables_must_exist() {
        let mut c = ready();
        c.script.template = "Hello {na$me}".into();
        assert_eq!(
            reason(c.validate(), "script.template"),
            "invalid character `$` in placeholder `na$me` at byte 9"
        );
        c.script.template = "{vars.offer} {vars.gift|a gift} {vars.code}".into();
        c.script.fallbacks.insert("vars.code".into(), "none".into());
        assert_eq!(
            reason(c.validate(), "script.template"),
            "`{vars.offer}` uses campaign variable `offer`, which script.variables does not define"
        );
        c.script.variables.insert("offer".into(), "10%".into());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_draft_without_audience_agent_or_script_is_not_ready() {
        let c = CampaignConfig {
            name: "x".into(),
            ..CampaignConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            fields(c.readiness()),
            ["audience", "agent", "script.template"]
        );
        let mut c = ready();
        c.audience.query = Some(serde_json::Value::Null);
        c.priority = 11;
        assert_eq!(fields(c.readiness()), ["priority", "audience"]);
        c.audience.lists.push(crate::ContactListId(3));
        assert_eq!(fields(c.readiness()), ["priority"]);
    }
}
