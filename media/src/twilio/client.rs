//! Twilio Programmable Voice REST client: place, follow and end calls.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};

pub use super::call::{
    CallResource, CallbackEvent, CreateCall, HttpMethod, MAX_TIMEOUT_SECS, MAX_TWIML_CHARS,
    MIN_TIMEOUT_SECS, MachineDetection,
};
pub use super::error::TwilioError;
pub use super::status::{AnsweredBy, CallStatus};

/// Production base URL of Twilio's REST API.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Idle connections kept to the API. A burst of dials opens one connection per request in
/// flight; afterwards only this many stay open (each holds buffers and, over TLS, a
/// session), the rest close.
const IDLE_CONNECTIONS: usize = 32;
/// How long an idle connection to the API is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest SID (account or call) accepted into a URL path.
const MAX_SID_LEN: usize = 64;

/// Credentials and endpoint of one Twilio account; `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// Account SID (`AC…`), also the Basic auth user.
    pub account_sid: String,
    /// Auth token, the Basic auth password and the signature key.
    pub auth_token: SecretString,
    /// Base URL, `https://api.twilio.com` in production, a loopback fake in tests.
    pub api_base: String,
}

impl TwilioConfig {
    /// A configuration for the production API.
    pub fn new(account_sid: impl Into<String>, auth_token: SecretString) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token,
            api_base: DEFAULT_API_BASE.to_owned(),
        }
    }

    /// Points the client at another base URL (e.g. the simulated carrier).
    pub fn with_api_base(mut self, api_base: impl Into<String>) -> Self {
        self.api_base = api_base.into();
        self
    }
}

/// A cheap-to-clone handle that talks to Twilio's REST API for one account.
#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    account_sid: String,
    auth_token: SecretString,
    calls_url: String,
}

impl fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioClient")
            .field("account_sid", &self.account_sid)
            .field("calls_url", &self.calls_url)
            .finish_non_exhaustive()
    }
}

impl TwilioClient {
    /// Builds a client after checking the configuration.
    pub fn new(config: TwilioConfig) -> Result<Self, TwilioError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build()?;
        Self::with_http_client(config, http)
    }

    /// Builds a client around an existing `reqwest::Client` (shared pool, custom timeouts).
    pub fn with_http_client(
        config: TwilioConfig,
        http: reqwest::Client,
    ) -> Result<Self, TwilioError> {
        check_sid("account_sid", &config.account_sid)?;
        let base = config.api_base.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TwilioError::Invalid {
                field: "api_base",
                reason: format!("{base:?} is not an http(s) url"),
            });
        }
        let calls_url = format!("{base}/2010-04-01/Accounts/{}/Calls", config.account_sid);
        Ok(Self {
            http,
            account_sid: config.account_sid,
            auth_token: config.auth_token,
            calls_url,
        })
    }

    /// The account this client acts for.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Places a call (`POST /Calls.json`) after validating the request.
    pub async fn create_call(&self, req: &CreateCall) -> Result<CallResource, TwilioError> {
        req.validate()?;
        let url = format!("{}.json", self.calls_url);
        let call = self.post_form(&url, &req.form_params()).await?;
        tracing::debug!(call_sid = %call.sid, status = ?call.status, "twilio call created");
        Ok(call)
    }

    /// Hangs up a call (`Status=completed`); Twilio cancels it if it is still ringing.
    pub async fn hangup(&self, call_sid: &str) -> Result<CallResource, TwilioError> {
        self.update_status(call_sid, "completed").await
    }

    /// Cancels a call that is queued or ringing (`Status=canceled`).
    pub async fn cancel(&self, call_sid: &str) -> Result<CallResource, TwilioError> {
        self.update_status(call_sid, "canceled").await
    }

    /// Replaces what a live call is doing with this TwiML (`POST /Calls/{Sid}.json` with
    /// `Twiml=`): Twilio stops the current verb (a media stream ends with `stop`) and runs
    /// the new document. At most 4000 characters, checked before sending.
    pub async fn update_twiml(
        &self,
        call_sid: &str,
        twiml: &str,
    ) -> Result<CallResource, TwilioError> {
        let chars = twiml.chars().count();
        if chars > MAX_TWIML_CHARS {
            return Err(TwilioError::Invalid {
                field: "twiml",
                reason: format!("{chars} characters exceed the limit of {MAX_TWIML_CHARS}"),
            });
        }
        let url = self.call_url(call_sid)?;
        let call = self.post_form(&url, &[("Twiml", twiml.to_owned())]).await?;
        tracing::debug!(call_sid, "twilio call given new twiml");
        Ok(call)
    }

    /// Reads the current state of a call.
    pub async fn fetch_call(&self, call_sid: &str) -> Result<CallResource, TwilioError> {
        let url = self.call_url(call_sid)?;
        let request = self.authed(self.http.get(url));
        self.send(request).await
    }

    async fn update_status(
        &self,
        call_sid: &str,
        status: &str,
    ) -> Result<CallResource, TwilioError> {
        let url = self.call_url(call_sid)?;
        let call = self
            .post_form(&url, &[("Status", status.to_owned())])
            .await?;
        tracing::debug!(call_sid, status, "twilio call updated");
        Ok(call)
    }

    fn call_url(&self, call_sid: &str) -> Result<String, TwilioError> {
        check_sid("call_sid", call_sid)?;
        Ok(format!("{}/{call_sid}.json", self.calls_url))
    }

    async fn post_form(
        &self,
        url: &str,
        form: &[(&'static str, String)],
    ) -> Result<CallResource, TwilioError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(name, value)| (*name, value.as_str())))
            .finish();
        let request = self
            .authed(self.http.post(url))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(ACCEPT, "application/json")
    }

    /// The account's most recent calls to `to` (`GET /Calls.json?To=`, newest first, one
    /// page of at most 50): how a call whose create was sent but whose answer was never
    /// read (the process died) is found again.
    pub async fn calls_to(&self, to: &str) -> Result<Vec<CallResource>, TwilioError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            calls: Vec<CallResource>,
        }
        let url = format!("{}.json", self.calls_url);
        let request = self
            .authed(self.http.get(url))
            .query(&[("To", to), ("PageSize", "50")]);
        let page: Page = self.send(request).await?;
        Ok(page.calls)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, TwilioError> {
        let response = request.send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await?;
        if !status.is_success() {
            let error = TwilioError::from_response(status.as_u16(), &body, retry_after.as_deref());
            tracing::warn!(error = %error, "twilio request failed");
            return Err(error);
        }
        serde_json::from_slice(&body).map_err(|error| TwilioError::Decode {
            status: status.as_u16(),
            reason: error.to_string(),
        })
    }
}

/// A SID goes into a URL path, so only short ASCII alphanumerics are accepted.
fn check_sid(field: &'static str, sid: &str) -> Result<(), TwilioError> {
    let reason = if sid.is_empty() {
        "must not be empty".to_owned()
    } else if sid.len() > MAX_SID_LEN {
        format!("is longer than {MAX_SID_LEN} characters")
    } else if !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        format!("{sid:?} must be ascii letters and digits")
    } else {
        return Ok(());
    };
    Err(TwilioError::Invalid { field, reason })
}

#[cfg(test)]
mod tests;
