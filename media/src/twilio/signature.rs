//! `X-Twilio-Signature`: signing and validating Twilio's webhook requests.
//!
//! The signature is base64(HMAC-SHA1(auth token, url + each parameter name and value,
//! sorted by name then value)). Twilio is inconsistent about default ports, so validation
//! also accepts the URL with its port stripped or with the scheme's default port added.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// Query parameter that carries the hex SHA-256 of a JSON request body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// Computes the signature Twilio sends for a form request to `url` with `params`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let Ok(mut mac) = HmacSha1::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_unstable();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a form request's signature in constant time, trying the port variants of `url`.
pub fn validate(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let deduplicated = deduplicate(params);
    let mut valid = false;
    for candidate in url_variants(url).iter().flatten() {
        valid |= matches(&sign(auth_token, candidate, params), signature);
        // twilio-python signs each distinct value once; accept that form as well.
        if let Some(unique) = &deduplicated {
            valid |= matches(&sign(auth_token, candidate, unique), signature);
        }
    }
    valid
}

/// Checks a JSON request: `bodySHA256` in the URL must hash `body`, and the signature
/// must cover the full URL (query included) with no parameters appended.
pub fn validate_json(
    auth_token: &str,
    url_with_body_sha256: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let Some(expected) = query_param(url_with_body_sha256, BODY_SHA256_PARAM) else {
        return false;
    };
    let hash_ok = matches(&body_sha256_hex(body), &expected.to_ascii_lowercase());
    let signature_ok = validate(auth_token, url_with_body_sha256, &[], signature);
    hash_ok & signature_ok
}

/// Lowercase hex SHA-256 of `body`, the value of `bodySHA256`.
pub fn body_sha256_hex(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(body);
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest.iter() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

fn matches(computed: &str, received: &str) -> bool {
    !computed.is_empty() && bool::from(computed.as_bytes().ct_eq(received.as_bytes()))
}

/// The parameters with exact duplicate pairs removed, or `None` when there were none.
fn deduplicate(params: &[(String, String)]) -> Option<Vec<(String, String)>> {
    let mut unique = params.to_vec();
    unique.sort_unstable();
    unique.dedup();
    (unique.len() != params.len()).then_some(unique)
}

/// The URL as given, then without its port, then with the scheme's default port.
fn url_variants(url: &str) -> [Option<String>; 3] {
    let Some(parts) = UrlParts::split(url) else {
        return [Some(url.to_owned()), None, None];
    };
    let stripped = parts
        .port
        .map(|_| format!("{}{}", parts.before_port, parts.rest));
    let with_default = match (parts.port, default_port(parts.scheme)) {
        (None, Some(port)) => Some(format!("{}:{port}{}", parts.before_port, parts.rest)),
        _ => None,
    };
    [Some(url.to_owned()), stripped, with_default]
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => Some(443),
        "http" | "ws" => Some(80),
        _ => None,
    }
}

/// A URL cut around its port: `before_port` + `:port` + `rest`.
struct UrlParts<'a> {
    scheme: &'a str,
    before_port: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let scheme_end = url.find("://")?;
        let authority_start = scheme_end + 3;
        let authority_len = url[authority_start..]
            .find(['/', '?', '#'])
            .unwrap_or(url.len() - authority_start);
        let authority_end = authority_start + authority_len;
        let authority = &url[authority_start..authority_end];
        let host_start = authority.rfind('@').map_or(0, |at| at + 1);
        let host_and_port = &authority[host_start..];
        // An IPv6 literal's colons are inside the brackets; the port follows `]`.
        let search_from = host_and_port.rfind(']').unwrap_or(0);
        let port = host_and_port[search_from..]
            .rfind(':')
            .map(|colon| search_from + colon)
            .filter(|&colon| {
                host_and_port[colon + 1..]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            });
        let port_start = authority_start + host_start + port.unwrap_or(host_and_port.len());
        Some(Self {
            scheme: &url[..scheme_end],
            before_port: &url[..port_start],
            port: port.map(|_| &url[port_start + 1..authority_end]),
            rest: &url[authority_end..],
        })
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = without_fragment.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const URL_443: &str = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    const SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const SIGNATURE_443: &str = "kvajT1Ptam85bY51eRf/AJRuM3w=";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn documented_vector_without_port() {
        assert_eq!(sign(TOKEN, URL, &params()), SIGNATURE);
        assert!(validate(TOKEN, URL, &params(), SIGNATURE));
    }

    #[test]
    fn documented_vector_with_default_port() {
        assert_eq!(sign(TOKEN, URL_443, &params()), SIGNATURE_443);
        assert!(validate(TOKEN, URL_443, &params(), SIGNATURE_443));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let mut reversed = params();
        reversed.reverse();
        assert_eq!(sign(TOKEN, URL, &reversed), SIGNATURE);
    }

    #[test]
    fn a_port_mismatch_either_way_is_accepted() {
        // Twilio signed with :443 but we see the URL without a port, and the reverse.
        assert!(validate(TOKEN, URL, &params(), SIGNATURE_443));
        assert!(validate(TOKEN, URL_443, &params(), SIGNATURE));
        let http = "http://mycompany.com/cb";
        let signed_80 = sign(TOKEN, "http://mycompany.com:80/cb", &[]);
        assert!(validate(TOKEN, http, &[], &signed_80));
        let wss = "wss://sb.example:443/media";
        assert!(validate(
            TOKEN,
            wss,
            &[],
            &sign(TOKEN, "wss://sb.example/media", &[])
        ));
    }

    #[test]
    fn another_port_or_host_is_not_accepted() {
        let signed = sign(
            TOKEN,
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &params(),
        );
        assert!(!validate(TOKEN, URL, &params(), &signed));
        let other_host = sign(TOKEN, "https://evil.com/myapp.php?foo=1&bar=2", &params());
        assert!(!validate(TOKEN, URL, &params(), &other_host));
    }

    #[test]
    fn repeated_values_are_signed_sorted_under_their_name() {
        let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let params = form(&[("Event", "ringing"), ("A", "1"), ("Event", "answered")]);
        let manual = {
            let mut mac = HmacSha1::new_from_slice(TOKEN.as_bytes()).unwrap();
            mac.update(b"https://h/cbA1EventansweredEventringing");
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        };
        assert_eq!(sign(TOKEN, "https://h/cb", &params), manual);
        assert!(validate(TOKEN, "https://h/cb", &params, &manual));
    }

    #[test]
    fn exact_duplicates_validate_whether_signed_once_or_twice() {
        let twice = vec![("Digits".to_owned(), "1".to_owned()); 2];
        let once = vec![("Digits".to_owned(), "1".to_owned())];
        assert!(validate(TOKEN, URL, &twice, &sign(TOKEN, URL, &twice)));
        assert!(validate(TOKEN, URL, &twice, &sign(TOKEN, URL, &once)));
    }

    #[test]
    fn a_wrong_token_or_tampered_param_is_rejected() {
        assert!(!validate("54321", URL, &params(), SIGNATURE));
        let mut tampered = params();
        tampered[4].1 = "+19005551212".into();
        assert!(!validate(TOKEN, URL, &tampered, SIGNATURE));
        let mut extra = params();
        extra.push(("Extra".into(), "1".into()));
        assert!(!validate(TOKEN, URL, &extra, SIGNATURE));
        assert!(!validate(TOKEN, URL, &params(), ""));
        assert!(!validate(TOKEN, URL, &params(), "garbage"));
    }

    #[test]
    fn json_bodies_are_checked_by_hash_and_signed_url() {
        let body = br#"{"event":"call.completed","sid":"CA1"}"#;
        let url = format!(
            "https://sb.example/hooks?{BODY_SHA256_PARAM}={}",
            body_sha256_hex(body)
        );
        let signature = sign(TOKEN, &url, &[]);
        assert!(validate_json(TOKEN, &url, body, &signature));
        assert!(!validate_json(
            TOKEN,
            &url,
            br#"{"event":"call.completed","sid":"CA2"}"#,
            &signature
        ));
        assert!(!validate_json("54321", &url, body, &signature));
        let no_hash = "https://sb.example/hooks";
        assert!(!validate_json(
            TOKEN,
            no_hash,
            body,
            &sign(TOKEN, no_hash, &[])
        ));
        let with_port = url.replacen("sb.example", "sb.example:443", 1);
        assert!(validate_json(TOKEN, &with_port, body, &signature));
    }

    #[test]
    fn body_hash_is_lowercase_hex_sha256() {
        assert_eq!(
            body_sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn url_variants_handle_userinfo_ipv6_and_odd_input() {
        let variants = |url| url_variants(url).into_iter().flatten().collect::<Vec<_>>();
        assert_eq!(
            variants("https://u:p@h:8443/x"),
            ["https://u:p@h:8443/x", "https://u:p@h/x"]
        );
        assert_eq!(
            variants("http://[::1]/x?y=1"),
            ["http://[::1]/x?y=1", "http://[::1]:80/x?y=1"]
        );
        assert_eq!(
            variants("https://[::1]:443"),
            ["https://[::1]:443", "https://[::1]"]
        );
        assert_eq!(variants("ftp://h/x"), ["ftp://h/x"]);
        assert_eq!(variants("not a url"), ["not a url"]);
        assert_eq!(variants("https://"), ["https://", "https://:443"]);
    }
}
