//! The client against a loopback Twilio stand-in that records what it receives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::*;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "s3cr3t-t0ken";

/// One request as the fake Twilio saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

/// A canned answer: status, optional `Retry-After`, JSON body.
type Canned = (StatusCode, Option<&'static str>, String);

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Mutex<VecDeque<Canned>>>,
}

async fn record(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    fake.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        authorization: text(header::AUTHORIZATION),
        content_type: text(header::CONTENT_TYPE),
        form: form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect(),
    });
    let reply = fake.replies.lock().unwrap().pop_front();
    let (status, retry_after, body) = reply.unwrap_or((StatusCode::NOT_FOUND, None, "{}".into()));
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.parse().unwrap());
    }
    response
}

/// Starts the fake on port 0 and a client pointed at it.
async fn start(replies: Vec<Canned>) -> (Fake, TwilioClient) {
    let fake = Fake::default();
    fake.replies.lock().unwrap().extend(replies);
    let app = Router::new().fallback(record).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config =
        TwilioConfig::new(SID, SecretString::from(TOKEN)).with_api_base(format!("http://{addr}/"));
    (fake, TwilioClient::new(config).unwrap())
}

fn call_json(sid: &str, status: &str) -> String {
    format!(
        r#"{{"sid":"{sid}","account_sid":"{SID}","status":"{status}","to":"+14155550100",
        "from":"+14155550199","start_time":null,"end_time":null,"duration":null,"price":null,
        "answered_by":null,"queue_time":"0","api_version":"2010-04-01",
        "subresource_uris":{{"notifications":"/x.json"}}}}"#
    )
}

fn expected_auth() -> String {
    let raw = format!("{SID}:{TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn create_call_posts_the_exact_form_with_basic_auth() {
    let (fake, client) = start(vec![(
        StatusCode::CREATED,
        None,
        call_json("CA42", "queued"),
    )])
    .await;
    let request = CreateCall::new("+14155550100", "+14155550199")
        .twiml("<Response><Say>hi & bye</Say></Response>")
        .status_callback("https://sb.example/twilio/status?call=7")
        .timeout_secs(30)
        .time_limit_secs(900)
        .machine_detection(MachineDetection::DetectMessageEnd)
        .machine_detection_timeout_secs(20)
        .async_amd(true)
        .async_amd_status_callback("https://sb.example/twilio/amd");

    let call = client.create_call(&request).await.unwrap();

    assert_eq!(call.sid, "CA42");
    assert_eq!(call.status, Some(CallStatus::Queued));
    assert_eq!(call.queue_time_ms(), Some(0));
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, format!("/2010-04-01/Accounts/{SID}/Calls.json"));
    assert_eq!(
        seen.authorization.as_deref(),
        Some(expected_auth().as_str())
    );
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.form,
        pairs(&[
            ("To", "+14155550100"),
            ("From", "+14155550199"),
            ("Twiml", "<Response><Say>hi & bye</Say></Response>"),
            ("StatusCallback", "https://sb.example/twilio/status?call=7"),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            ("Timeout", "30"),
            ("TimeLimit", "900"),
            ("MachineDetection", "DetectMessageEnd"),
            ("MachineDetectionTimeout", "20"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", "https://sb.example/twilio/amd"),
            ("AsyncAmdStatusCallbackMethod", "POST"),
        ])
    );
}

#[tokio::test]
async fn a_url_call_sends_url_and_method_instead_of_twiml() {
    let (fake, client) = start(vec![(
        StatusCode::CREATED,
        None,
        call_json("CA1", "queued"),
    )])
    .await;
    let request = CreateCall::new("+14155550100", "+14155550199")
        .url("https://sb.example/twiml")
        .method(HttpMethod::Get);
    client.create_call(&request).await.unwrap();
    let form = fake.seen.lock().unwrap()[0].form.clone();
    assert_eq!(
        form,
        pairs(&[
            ("To", "+14155550100"),
            ("From", "+14155550199"),
            ("Url", "https://sb.example/twiml"),
            ("Method", "GET"),
        ])
    );
}

#[tokio::test]
async fn an_invalid_request_never_reaches_twilio() {
    let (fake, client) = start(vec![]).await;
    let request = CreateCall::new("", "+14155550199").twiml("<Response/>");
    let error = client.create_call(&request).await.unwrap_err();
    assert_eq!(
        error,
        TwilioError::Invalid {
            field: "to",
            reason: "must not be empty".into()
        }
    );
    assert!(fake.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_rate_limited_request_is_retryable_with_its_delay() {
    let body = r#"{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}"#;
    let (_fake, client) = start(vec![(
        StatusCode::TOO_MANY_REQUESTS,
        Some("2"),
        body.into(),
    )])
    .await;
    let request = CreateCall::new("+14155550100", "+14155550199").twiml("<Response/>");
    let error = client.create_call(&request).await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(error.code(), Some(20429));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn an_invalid_number_is_not_retryable() {
    let body = r#"{"code":21211,"message":"The 'To' number +1555 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#;
    let (_fake, client) = start(vec![(StatusCode::BAD_REQUEST, None, body.into())]).await;
    let request = CreateCall::new("+1555", "+14155550199").twiml("<Response/>");
    let error = client.create_call(&request).await.unwrap_err();
    assert!(!error.is_retryable());
    assert!(matches!(
        error,
        TwilioError::Api { status: 400, code: Some(21211), ref message, .. }
            if message.contains("not a valid phone number")
    ));
}

#[tokio::test]
async fn hangup_cancel_and_fetch_address_the_call_resource() {
    let (fake, client) = start(vec![
        (StatusCode::OK, None, call_json("CA9", "completed")),
        (StatusCode::OK, None, call_json("CA9", "canceled")),
        (StatusCode::OK, None, call_json("CA9", "busy")),
    ])
    .await;
    assert_eq!(
        client.hangup("CA9").await.unwrap().status,
        Some(CallStatus::Completed)
    );
    assert_eq!(
        client.cancel("CA9").await.unwrap().status,
        Some(CallStatus::Canceled)
    );
    assert!(
        client
            .fetch_call("CA9")
            .await
            .unwrap()
            .status
            .unwrap()
            .is_terminal()
    );
    let seen = fake.seen.lock().unwrap().clone();
    let path = format!("/2010-04-01/Accounts/{SID}/Calls/CA9.json");
    assert!(seen.iter().all(|s| s.path == path));
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(expected_auth().as_str()))
    );
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].form, pairs(&[("Status", "completed")]));
    assert_eq!(seen[1].form, pairs(&[("Status", "canceled")]));
    assert_eq!(seen[2].method, Method::GET);
}

#[tokio::test]
async fn new_twiml_for_a_live_call_is_posted_to_the_call_resource() {
    let (fake, client) = start(vec![(
        StatusCode::OK,
        None,
        call_json("CA9", "in-progress"),
    )])
    .await;
    let xml = super::super::twiml::say_and_hangup("Acme & Co calling. Goodbye.");
    let call = client.update_twiml("CA9", &xml).await.unwrap();
    assert_eq!(call.status, Some(CallStatus::InProgress));
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(
        seen[0].path,
        format!("/2010-04-01/Accounts/{SID}/Calls/CA9.json")
    );
    assert_eq!(seen[0].form, pairs(&[("Twiml", xml.as_str())]));
    assert!(xml.contains("<Say>Acme &amp; Co calling. Goodbye.</Say><Hangup/>"));

    let too_long = "x".repeat(MAX_TWIML_CHARS + 1);
    let error = client.update_twiml("CA9", &too_long).await.unwrap_err();
    assert!(matches!(error, TwilioError::Invalid { field: "twiml", .. }));
    assert_eq!(fake.seen.lock().unwrap().len(), 1, "never sent");
}

#[tokio::test]
async fn a_hostile_call_sid_is_refused_before_sending() {
    let (fake, client) = start(vec![]).await;
    for sid in ["", "../../Accounts", "CA1?x=1", &"C".repeat(65)] {
        let error = client.hangup(sid).await.unwrap_err();
        assert!(
            matches!(
                error,
                TwilioError::Invalid {
                    field: "call_sid",
                    ..
                }
            ),
            "{sid}"
        );
    }
    assert!(fake.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreadable_success_body_is_a_decode_error_not_a_retry() {
    let (_fake, client) = start(vec![(StatusCode::CREATED, None, "not json".into())]).await;
    let request = CreateCall::new("+14155550100", "+14155550199").twiml("<Response/>");
    let error = client.create_call(&request).await.unwrap_err();
    assert!(matches!(error, TwilioError::Decode { status: 201, .. }));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config =
        TwilioConfig::new(SID, SecretString::from(TOKEN)).with_api_base(format!("http://{addr}"));
    let client = TwilioClient::new(config).unwrap();
    let error = client.fetch_call("CA1").await.unwrap_err();
    assert!(matches!(error, TwilioError::Transport(_)));
    assert!(error.is_retryable());
}

#[test]
fn debug_output_never_shows_the_token() {
    let config = TwilioConfig::new(SID, SecretString::from(TOKEN));
    assert!(!format!("{config:?}").contains(TOKEN));
    let client = TwilioClient::new(config).unwrap();
    let shown = format!("{client:?}");
    assert!(shown.contains(SID));
    assert!(!shown.contains(TOKEN));
}

#[test]
fn a_bad_configuration_is_refused() {
    let bad_base = TwilioConfig::new(SID, SecretString::from(TOKEN)).with_api_base("ftp://x");
    assert!(matches!(
        TwilioClient::new(bad_base),
        Err(TwilioError::Invalid {
            field: "api_base",
            ..
        })
    ));
    let bad_sid = TwilioConfig::new("AC/../x", SecretString::from(TOKEN));
    assert!(matches!(
        TwilioClient::new(bad_sid),
        Err(TwilioError::Invalid {
            field: "account_sid",
            ..
        })
    ));
}
