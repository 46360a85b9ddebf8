//! The call context an agent receives, built in one place for every mode: the
//! `customParameters` of a media stream's `start`, and the dispatch metadata of a LiveKit
//! agent carry the same names and values.

use crate::urls::PublicUrls;
use std::collections::BTreeMap;
use switchboard_engine::campaign::AgentConfig;
use switchboard_engine::contact::Contact;
use switchboard_engine::store::{AttemptRecord, CampaignRecord};
use switchboard_engine::template::Template;
use switchboard_media::livekit::{CallContact, CallContext};

/// The context of one call attempt. `token_secret` signs the per-call agent token.
pub fn call_context(
    attempt: &AttemptRecord,
    campaign: &CampaignRecord,
    contact: &Contact,
    urls: &PublicUrls,
    token_secret: &[u8],
) -> CallContext {
    let script = &campaign.config.script;
    let rendered = Template::parse(&script.template)
        .map(|t| t.render(contact, &script.variables, &script.fallbacks).text)
        .unwrap_or_else(|_| script.template.clone());
    let agent_name = match &campaign.config.agent {
        Some(AgentConfig::Livekit { agent_name } | AgentConfig::Sip { agent_name, .. }) => {
            agent_name.clone()
        }
        Some(AgentConfig::MediaStream { .. }) | None => String::new(),
    };
    CallContext {
        call_id: attempt.id.0,
        campaign_id: campaign.id.0,
        agent_name,
        token: switchboard_engine::call_token::issue(token_secret, attempt.id),
        outcome_url: urls.outcome(),
        contact: CallContact {
            phone: contact.phone.to_string(),
            name: contact.name.clone(),
            email: contact.email.clone(),
            company: contact.company.clone(),
            timezone: contact.timezone.clone(),
            attributes: contact.attributes.clone(),
        },
        script: rendered,
        variables: script
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    }
}

/// The context as a media stream's `start.customParameters` (strings only: `contact` and
/// `vars` are JSON text).
pub fn stream_parameters(context: &CallContext) -> BTreeMap<String, String> {
    let contact = serde_json::to_string(&context.contact).unwrap_or_else(|_| "{}".to_owned());
    let vars = serde_json::to_string(&context.variables).unwrap_or_else(|_| "{}".to_owned());
    BTreeMap::from([
        ("call_id".to_owned(), context.call_id.to_string()),
        ("token".to_owned(), context.token.clone()),
        ("outcome_url".to_owned(), context.outcome_url.clone()),
        ("campaign_id".to_owned(), context.campaign_id.to_string()),
        ("script".to_owned(), context.script.clone()),
        ("contact".to_owned(), contact),
        ("vars".to_owned(), vars),
    ])
}
