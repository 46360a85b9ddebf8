//! Webhook and agent URLs held to public destinations ([`switchboard_engine::destination`]):
//! checked when a tenant registers one (the name is resolved and every address judged),
//! and again when a delivery or a call connects, since a name may point elsewhere by then:
//! webhooks through [`GuardedResolver`], agents through the agent connector's guard
//! ([`agent_guard`]). The `webhook_allow_private_addresses` and
//! `agent_allow_private_addresses` settings turn them off (on-premises receivers and
//! agents, tests on loopback).

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use switchboard_engine::destination::{Refusal, refusal};

/// How long registration waits for a name to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a webhook URL is no place to send deliveries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DestinationError {
    /// Not an http(s) URL with a host.
    #[error("{url:?} is not an http(s) URL with a host")]
    NotHttp {
        /// The URL.
        url: String,
    },
    /// The host is, or resolves to, a refused address.
    #[error("{}; such destinations are refused unless the server allows them (webhook_allow_private_addresses, agent_allow_private_addresses)", refused_text(.host, .ip, .why))]
    Refused {
        /// The URL's host.
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// What kind of address it is.
        why: Refusal,
    },
    /// The name does not resolve.
    #[error("host {host} does not resolve: {reason}")]
    Unresolvable {
        /// The URL's host.
        host: String,
        /// Why.
        reason: String,
    },
}

/// `127.0.0.1 is a loopback address`, `localhost resolves to 127.0.0.1, a loopback address`.
fn refused_text(host: &str, ip: &IpAddr, why: &Refusal) -> String {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if literal.parse::<IpAddr>().is_ok() {
        format!("{host} is {why}")
    } else {
        format!("{host} resolves to {ip}, {why}")
    }
}

fn judge(host: &str, ip: IpAddr) -> Result<(), DestinationError> {
    match refusal(ip) {
        None => Ok(()),
        Some(why) => Err(DestinationError::Refused {
            host: host.to_owned(),
            ip,
            why,
        }),
    }
}

/// The URL's host when it is an IP address, judged; `Ok(Some(name))` when it is a name to
/// resolve.
fn literal(url: &str) -> Result<Option<(String, u16)>, DestinationError> {
    literal_of(url, &["http", "https"])
}

/// [`literal`] for a URL of one of these schemes.
fn literal_of(url: &str, schemes: &[&str]) -> Result<Option<(String, u16)>, DestinationError> {
    let not_http = || DestinationError::NotHttp {
        url: url.to_owned(),
    };
    let parsed = reqwest::Url::parse(url.trim()).map_err(|_| not_http())?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(not_http());
    }
    let port = parsed.port_or_known_default().ok_or_else(not_http)?;
    // The parser writes every IPv4 spelling (2130706433, 0x7f.1) as dotted decimal and
    // IPv6 in brackets.
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(not_http)?;
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => judge(host, ip).map(|()| None),
        Err(_) => Ok(Some((host.to_owned(), port))),
    }
}

/// Checks a URL before it is registered: an IP host is judged; a name is resolved (within
/// [`RESOLVE_TIMEOUT`]) and every address it resolves to is judged.
pub async fn check_url(url: &str) -> Result<(), DestinationError> {
    check_resolved(literal(url)?).await
}

/// [`check_url`] for an agent's `ws://` or `wss://` URL.
pub async fn check_agent_url(url: &str) -> Result<(), DestinationError> {
    check_resolved(literal_of(url, &["ws", "wss"])?).await
}

/// What the agent connector asks of every address an agent URL resolves to, when private
/// addresses are not allowed.
pub fn agent_guard() -> switchboard_media::agent_ws::AddressGuard {
    std::sync::Arc::new(|ip| {
        refusal(ip).map(|why| {
            format!("{why}; agents there are refused unless the server sets agent_allow_private_addresses")
        })
    })
}

async fn check_resolved(target: Option<(String, u16)>) -> Result<(), DestinationError> {
    let Some((host, port)) = target else {
        return Ok(());
    };
    for addr in resolve(&host, port).await? {
        judge(&host, addr.ip())?;
    }
    Ok(())
}

/// Checks a URL whose host is an IP address (a delivery: names are checked by
/// [`GuardedResolver`] as the connection is made).
pub fn check_literal(url: &str) -> Result<(), DestinationError> {
    literal(url).map(|_| ())
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, DestinationError> {
    let unresolvable = |reason: String| DestinationError::Unresolvable {
        host: host.to_owned(),
        reason,
    };
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| unresolvable(format!("no answer within {RESOLVE_TIMEOUT:?}")))?
        .map_err(|e| unresolvable(e.to_string()))?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(unresolvable("no addresses".into()));
    }
    Ok(addrs)
}

/// The delivery client's resolver: a name that resolves to any refused address fails to
/// connect with [`DestinationError::Refused`], found again by [`refused_in`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve(&host, 0).await?;
            for addr in &addrs {
                judge(&host, addr.ip())?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The refused destination behind a send error, if that is why it failed.
pub fn refused_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a DestinationError> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found @ DestinationError::Refused { .. }) = e.downcast_ref() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_naming_internal_addresses_are_refused_with_the_reason() {
        for (url, says) in [
            (
                "http://127.0.0.1:9000/hooks",
                "127.0.0.1 is a loopback address",
            ),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://[::1]/x", "[::1] is a loopback address"),
            ("http://[::ffff:10.0.0.1]/x", "a private address"),
            ("http://2130706433/", "loopback"),
            ("http://0x7f.1/", "loopback"),
            ("https://localhost/hooks", "localhost resolves to "),
        ] {
            let refused = check_url(url).await.expect_err(url).to_string();
            assert!(refused.contains(says), "{url}: {refused}");
            assert!(
                refused.contains("webhook_allow_private_addresses"),
                "{refused}"
            );
        }
    }

    #[tokio::test]
    async fn only_http_urls_with_a_host_pass() {
        for url in [
            "ftp://8.8.8.8/x",
            "file:///etc/passwd",
            "gopher://8.8.8.8/",
            "http://",
        ] {
            assert!(
                matches!(check_url(url).await, Err(DestinationError::NotHttp { .. })),
                "{url}"
            );
        }
        check_url("https://8.8.8.8/hooks").await.unwrap();
        check_literal("https://8.8.8.8:8443/hooks").unwrap();
        check_literal("https://hooks.example.com/x").unwrap();
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_refused_as_such() {
        let refused = check_url("https://no-such-host.invalid/hooks").await;
        assert!(
            matches!(refused, Err(DestinationError::Unresolvable { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn agent_urls_get_the_same_judgement_over_websocket_schemes() {
        let refused = check_agent_url("ws://169.254.169.254/latest/meta-data")
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("link-local"), "{refused}");
        assert!(
            refused.contains("agent_allow_private_addresses"),
            "{refused}"
        );
        let refused = check_agent_url("wss://localhost:8443/agent")
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("loopback"), "{refused}");
        check_agent_url("wss://8.8.8.8/agent").await.unwrap();
        assert!(matches!(
            check_agent_url("https://8.8.8.8/agent").await,
            Err(DestinationError::NotHttp { .. })
        ));
        let guard = agent_guard();
        assert!(guard("10.1.2.3".parse().unwrap()).is_some_and(|why| why.contains("private")));
        assert_eq!(guard("8.8.8.8".parse().unwrap()), None);
    }
}
