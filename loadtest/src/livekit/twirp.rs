//! Twirp as LiveKit serves it: protobuf (or JSON) bodies, bearer JWTs checked with
//! `livekit-api`'s `TokenVerifier`, and errors as `{"code","msg","meta"}` with the HTTP
//! status Twirp assigns to each code.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use livekit_api::access_token::{Claims, TokenVerifier};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// LiveKit's message when a token lacks a grant (its auth layer wraps it as
/// `unauthenticated`).
pub(crate) const PERMISSION_DENIED: &str = "permissions denied";

/// A Twirp error, as LiveKit's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TwirpError {
    pub code: &'static str,
    pub msg: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

impl TwirpError {
    pub fn new(code: &'static str, msg: impl Into<String>) -> TwirpError {
        TwirpError {
            code,
            msg: msg.into(),
            meta: BTreeMap::new(),
        }
    }

    /// A token without the grant a method needs.
    pub fn permission() -> TwirpError {
        Self::new("unauthenticated", PERMISSION_DENIED)
    }

    /// A failed SIP call: the Twirp code LiveKit maps the SIP status to, and the status in
    /// `meta` (`sip_status_code`, `sip_status`).
    pub fn sip(code: u16, reason: &str) -> TwirpError {
        let mut error = Self::new(sip_twirp_code(code), format!("sip status {code}: {reason}"));
        error
            .meta
            .insert("sip_status_code".into(), code.to_string());
        error.meta.insert("sip_status".into(), reason.to_owned());
        error
    }

    /// The HTTP status Twirp uses for the code.
    pub fn status(&self) -> StatusCode {
        match self.code {
            "canceled" | "deadline_exceeded" => StatusCode::REQUEST_TIMEOUT,
            "invalid_argument" | "malformed" | "out_of_range" => StatusCode::BAD_REQUEST,
            "not_found" | "bad_route" => StatusCode::NOT_FOUND,
            "already_exists" | "aborted" => StatusCode::CONFLICT,
            "permission_denied" => StatusCode::FORBIDDEN,
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
            "failed_precondition" => StatusCode::PRECONDITION_FAILED,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            self.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The Twirp code LiveKit gives a SIP failure (from `livekit/protocol`'s `sip.go`).
pub(crate) fn sip_twirp_code(code: u16) -> &'static str {
    match code {
        404 | 410 | 604 | 301 | 302 => "not_found",
        401 | 402 | 403 | 603 | 607 | 608 => "permission_denied",
        407 => "unauthenticated",
        408 | 504 => "deadline_exceeded",
        480 | 486 | 600 => "resource_exhausted",
        487 => "aborted",
        500..=503 => "failed_precondition",
        400..=499 | 600..=699 => "invalid_argument",
        _ => "failed_precondition",
    }
}

/// Whether the body is protobuf (LiveKit's SDKs) or JSON (Twirp's other encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Protobuf,
    Json,
}

impl Format {
    pub fn of(headers: &HeaderMap) -> Format {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if json { Format::Json } else { Format::Protobuf }
    }

    pub fn decode<T: prost::Message + Default + DeserializeOwned>(
        self,
        body: &[u8],
    ) -> Result<T, TwirpError> {
        let decoded = match self {
            Format::Protobuf => T::decode(body).map_err(|e| e.to_string()),
            Format::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
        };
        decoded.map_err(|e| TwirpError::new("malformed", format!("failed to decode request: {e}")))
    }

    pub fn encode<T: prost::Message + Serialize>(self, message: &T) -> Response {
        let (content_type, body) = match self {
            Format::Protobuf => ("application/protobuf", message.encode_to_vec()),
            Format::Json => (
                "application/json",
                serde_json::to_vec(message).unwrap_or_default(),
            ),
        };
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

/// Reads the bearer token: `Ok(None)` without an `Authorization` header (every grant check
/// then fails), an error for a header that is not `Bearer <jwt>` or a token that does not
/// verify (wrong secret, another key, expired).
pub(crate) fn authenticate(
    verifier: &TokenVerifier,
    headers: &HeaderMap,
) -> Result<Option<Claims>, TwirpError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            TwirpError::new(
                "unauthenticated",
                "invalid authorization header. Must start with Bearer ",
            )
        })?;
    verifier.verify(token).map(Some).map_err(|e| {
        TwirpError::new(
            "unauthenticated",
            format!("invalid authorization token: {e}"),
        )
    })
}

/// The grant checks LiveKit's services make.
pub(crate) mod grants {
    use super::{Claims, TwirpError};

    fn check(ok: bool) -> Result<(), TwirpError> {
        if ok {
            Ok(())
        } else {
            Err(TwirpError::permission())
        }
    }

    /// `roomCreate` (CreateRoom, DeleteRoom, ConnectTwilioCall).
    pub fn room_create(claims: Option<&Claims>) -> Result<(), TwirpError> {
        check(claims.is_some_and(|c| c.video.room_create))
    }

    /// `roomAdmin` on exactly this room (CreateDispatch, ListParticipants).
    pub fn room_admin(claims: Option<&Claims>, room: &str) -> Result<(), TwirpError> {
        check(claims.is_some_and(|c| c.video.room_admin && c.video.room == room))
    }

    /// `sip.call` (CreateSIPParticipant).
    pub fn sip_call(claims: Option<&Claims>) -> Result<(), TwirpError> {
        check(claims.is_some_and(|c| c.sip.call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::access_token::{AccessToken, VideoGrants};

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn tokens_are_verified_with_the_key_and_secret() {
        let verifier = TokenVerifier::with_api_key("key", "secret");
        let grants = VideoGrants {
            room_create: true,
            ..VideoGrants::default()
        };
        let good = AccessToken::with_api_key("key", "secret")
            .with_grants(grants.clone())
            .to_jwt()
            .unwrap();
        let claims = authenticate(&verifier, &bearer(&good)).unwrap().unwrap();
        assert!(grants::room_create(Some(&claims)).is_ok());
        assert!(grants::room_admin(Some(&claims), "call-1").is_err());
        let forged = AccessToken::with_api_key("key", "wrong").to_jwt().unwrap();
        let error = authenticate(&verifier, &bearer(&forged)).unwrap_err();
        assert_eq!(
            (error.code, error.status()),
            ("unauthenticated", StatusCode::UNAUTHORIZED)
        );
        assert_eq!(authenticate(&verifier, &HeaderMap::new()).unwrap(), None);
        assert_eq!(grants::sip_call(None), Err(TwirpError::permission()));
    }

    #[test]
    fn sip_failures_carry_their_status_in_meta_with_livekit_codes() {
        let busy = TwirpError::sip(486, "Busy Here");
        assert_eq!(busy.code, "resource_exhausted");
        assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(busy.meta["sip_status_code"], "486");
        assert_eq!(busy.meta["sip_status"], "Busy Here");
        assert_eq!(sip_twirp_code(603), "permission_denied");
        assert_eq!(sip_twirp_code(480), "resource_exhausted");
        assert_eq!(sip_twirp_code(503), "failed_precondition");
        assert_eq!(sip_twirp_code(484), "invalid_argument");
        let json: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&busy).unwrap()).unwrap();
        assert_eq!(json["msg"], "sip status 486: Busy Here");
    }
}
