//! A campaign's abandonment settings (a person answered and the agent was not heard within
//! 2 seconds): the pacer's target and cap, whether a late agent keeps the call, and the
//! identification message played before an abandoned call is hung up.

use super::config::CampaignConfig;
use crate::FieldError;
use crate::contact::Contact;
use crate::template::{Source, Template};
use serde::{Deserialize, Serialize};

/// The identification message unless a campaign sets its own: who called, and how to
/// call back. `{vars.caller_name}` falls back to the campaign's name and
/// `{vars.callback_number}` to the caller id the call was placed from.
pub const DEFAULT_ABANDONMENT_MESSAGE: &str = "Hello, this is {vars.caller_name} calling. Sorry, \
     nobody is free to take your call right now. We will call you back, or you can reach us \
     at {vars.callback_number}. Goodbye.";

/// Longest identification message, in characters (Twilio reads it before hanging up).
pub const MAX_ABANDONMENT_MESSAGE_CHARS: usize = 300;

/// Campaign variables the identification message may use without defining them: they
/// fall back to the campaign's name and the caller id.
pub const BUILT_IN_MESSAGE_VARS: [&str; 2] = ["caller_name", "callback_number"];

/// Abandonment (a person answered and no agent within 2 seconds) limits for the pacer,
/// and what an abandoned caller hears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Abandonment {
    /// Rate the pacer aims under; default 0.02.
    pub target_rate: f64,
    /// Hard cap, at most the regulatory 0.03; default 0.03.
    pub max_rate: f64,
    /// Whether a call whose agent is late is still bridged rather than ended (it counts
    /// as abandoned either way); default `false`.
    pub keep_agent_if_late: bool,
    /// What an abandoned caller hears before the hang-up (unless the late agent is kept):
    /// a template like the script's, at most 300 characters; default
    /// [`DEFAULT_ABANDONMENT_MESSAGE`].
    pub message: String,
}

impl Default for Abandonment {
    fn default() -> Self {
        Abandonment {
            target_rate: 0.02,
            max_rate: 0.03,
            keep_agent_if_late: false,
            message: DEFAULT_ABANDONMENT_MESSAGE.to_owned(),
        }
    }
}

impl Abandonment {
    /// Problems with `message`, each at `abandonment.message`: empty, too long, not a
    /// template, or using a campaign variable `variables` does not define.
    pub(crate) fn message_problems(
        &self,
        variables: &std::collections::BTreeMap<String, String>,
        fallbacks: &std::collections::BTreeMap<String, String>,
    ) -> Vec<FieldError> {
        const FIELD: &str = "abandonment.message";
        let text = &self.message;
        let mut problems = Vec::new();
        if text.trim().is_empty() {
            problems.push(FieldError::new(FIELD, "the value is empty"));
        }
        let chars = text.chars().count();
        if chars > MAX_ABANDONMENT_MESSAGE_CHARS {
            problems.push(FieldError::new(
                FIELD,
                format!("{chars} characters exceed the limit of {MAX_ABANDONMENT_MESSAGE_CHARS}"),
            ));
        }
        match Template::parse(text) {
            Err(e) => problems.push(FieldError::new(FIELD, e.to_string())),
            Ok(template) => {
                for ph in template.placeholders() {
                    let Source::Var(key) = &ph.source else {
                        continue;
                    };
                    let known = variables.contains_key(key)
                        || BUILT_IN_MESSAGE_VARS.contains(&key.as_str())
                        || ph.fallback.is_some()
                        || fallbacks.contains_key(&ph.name);
                    if !known {
                        problems.push(FieldError::new(
                            FIELD,
                            format!(
                                "`{{{}}}` uses campaign variable `{key}`, which script.variables does not define",
                                ph.name
                            ),
                        ));
                    }
                }
            }
        }
        problems
    }
}

impl CampaignConfig {
    /// The identification message for one contact: `abandonment.message` rendered like the
    /// script (contact fields, `script.variables`, `script.fallbacks`), where
    /// `{vars.caller_name}` falls back to the campaign's name and `{vars.callback_number}`
    /// to `caller_id`. A message that renders empty says who called.
    pub fn abandonment_message(&self, contact: &Contact, caller_id: &str) -> String {
        let script = &self.script;
        let mut fallbacks = script.fallbacks.clone();
        fallbacks
            .entry("vars.caller_name".into())
            .or_insert_with(|| self.name.clone());
        fallbacks
            .entry("vars.callback_number".into())
            .or_insert_with(|| caller_id.to_owned());
        let text = Template::parse(&self.abandonment.message)
            .map(|t| t.render(contact, &script.variables, &fallbacks).text)
            .unwrap_or_else(|_| self.abandonment.message.clone());
        let text = text.trim();
        if text.is_empty() {
            format!("This call was from {}. Goodbye.", self.name)
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContactId, E164, TenantId};
    use serde_json::json;

    fn contact() -> Contact {
        let now = crate::time::now();
        Contact {
            id: ContactId(1),
            tenant_id: TenantId(1),
            phone: E164::parse("+14155550101", None).unwrap(),
            name: Some("Ada".into()),
            email: None,
            company: None,
            timezone: None,
            attributes: Default::default(),
            consent_at: None,
            opted_out_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn config(doc: serde_json::Value) -> Result<CampaignConfig, Vec<FieldError>> {
        CampaignConfig::from_json(doc)
    }

    #[test]
    fn the_default_message_names_the_campaign_and_the_caller_id() {
        let c = config(json!({"name": "Acme renewals"})).unwrap();
        let text = c.abandonment_message(&contact(), "+14155550000");
        assert!(
            text.starts_with("Hello, this is Acme renewals calling."),
            "{text}"
        );
        assert!(text.contains("reach us at +14155550000."), "{text}");
    }

    #[test]
    fn a_caller_name_variable_and_contact_fields_personalize_the_message() {
        let c = config(json!({
            "name": "Q4",
            "script": {"variables": {"caller_name": "Acme Homes"}},
            "abandonment": {"message": "Sorry {name}, {vars.caller_name} will call back."}
        }))
        .unwrap();
        assert_eq!(
            c.abandonment_message(&contact(), "+1"),
            "Sorry Ada, Acme Homes will call back."
        );
    }

    #[test]
    fn a_long_empty_or_broken_message_is_refused_at_its_field() {
        for (message, reason) in [
            ("x".repeat(301), "301 characters exceed the limit of 300"),
            ("  ".to_owned(), "the value is empty"),
            ("Hello {name".to_owned(), "unclosed"),
            ("From {vars.brand}".to_owned(), "campaign variable `brand`"),
        ] {
            let errors =
                config(json!({"name": "Q4", "abandonment": {"message": message}})).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, "abandonment.message");
            assert!(
                errors[0].reason.contains(reason),
                "{reason}: {}",
                errors[0].reason
            );
        }
        let at_limit = "é".repeat(MAX_ABANDONMENT_MESSAGE_CHARS);
        assert!(config(json!({"name": "Q4", "abandonment": {"message": at_limit}})).is_ok());
    }
}
