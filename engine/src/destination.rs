//! Which network addresses an outbound webhook may be sent to.
//!
//! A tenant names the URL; the server sends to it from inside the deployment's network.
//! Left unchecked, a URL could reach the server's own loopback services, the private
//! network around it, or the cloud metadata service at 169.254.169.254 (server-side
//! request forgery). [`refusal`] says why an address is no place for a webhook; the API
//! refuses such URLs when they are registered and the delivery worker again when it
//! connects, since a name may resolve elsewhere later.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused as a webhook destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `127.0.0.0/8`, `::1`: this machine.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918).
    Private,
    /// `100.64.0.0/10` (RFC 6598): carrier-grade NAT, inside a provider's network.
    SharedAddressSpace,
    /// `169.254.0.0/16`, `fe80::/10`: the local link, cloud metadata services among it.
    LinkLocal,
    /// `fc00::/7` (RFC 4193), and the deprecated site-local `fec0::/10`.
    UniqueLocal,
    /// `0.0.0.0/8`, `::`: no address, or this host.
    Unspecified,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4`: reserved, never a host on the internet.
    Reserved,
}

impl Refusal {
    /// What the address is, in words (`a loopback address`).
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Loopback => "a loopback address",
            Refusal::Private => "a private address (RFC 1918)",
            Refusal::SharedAddressSpace => "a carrier-grade NAT address (RFC 6598)",
            Refusal::LinkLocal => "a link-local address (cloud metadata services live there)",
            Refusal::UniqueLocal => "a unique-local IPv6 address",
            Refusal::Unspecified => "the unspecified address",
            Refusal::Multicast => "a multicast address",
            Refusal::Broadcast => "the broadcast address",
            Refusal::Reserved => "a reserved address",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why `ip` may not receive webhooks, or `None` when it is a public address.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b) {
        _ if ip.is_broadcast() => Refusal::Broadcast,
        // IETF protocol assignments (192.0.0.0/24), the documentation networks
        // (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), the deprecated 6to4 relay
        // anycast (192.88.99.0/24) and the benchmarking range (198.18.0.0/15): none is a
        // place on the internet, several are used inside networks.
        (192, 0) if c == 0 || c == 2 => Refusal::Reserved,
        (192, 88) if c == 99 => Refusal::Reserved,
        (198, 18..=19) => Refusal::Reserved,
        (198, 51) if c == 100 => Refusal::Reserved,
        (203, 0) if c == 113 => Refusal::Reserved,
        (0, _) => Refusal::Unspecified,
        (127, _) => Refusal::Loopback,
        (10, _) | (172, 16..=31) | (192, 168) => Refusal::Private,
        (100, 64..=127) => Refusal::SharedAddressSpace,
        (169, 254) => Refusal::LinkLocal,
        (224..=239, _) => Refusal::Multicast,
        (240..=255, _) => Refusal::Reserved,
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<Refusal> {
    if ip.is_unspecified() {
        return Some(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Refusal::Loopback);
    }
    let s = ip.segments();
    // IPv4 inside IPv6 reaches the IPv4 address: mapped (::ffff:a.b.c.d), the deprecated
    // compatible form (::a.b.c.d) and NAT64's well-known prefix (64:ff9b::a.b.c.d).
    let embedded =
        s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if embedded {
        let [.., hi, lo] = s;
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return refusal_v4(v4);
    }
    // Tunnels that carry IPv4 inside IPv6 to a gateway: 6to4 (2002::/16), Teredo
    // (2001::/32) and local-use NAT64 (64:ff9b:1::/48, a network's own translator) reach
    // whatever the gateway can reach, inside networks included.
    if s[0] == 0x2002 || s[..2] == [0x2001, 0] || s[..3] == [0x64, 0xff9b, 1] {
        return Some(Refusal::Reserved);
    }
    match s[0] {
        x if x & 0xffc0 == 0xfe80 => Some(Refusal::LinkLocal),
        x if x & 0xffc0 == 0xfec0 => Some(Refusal::UniqueLocal),
        x if x & 0xfe00 == 0xfc00 => Some(Refusal::UniqueLocal),
        x if x & 0xff00 == 0xff00 => Some(Refusal::Multicast),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(ip: &str) -> Option<Refusal> {
        refusal(ip.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.1",
            "203.0.114.1",
            "2001:4860:4860::8888",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(why(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn internal_addresses_are_refused_with_their_kind() {
        let cases = [
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.0.9", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("10.0.0.1", Refusal::Private),
            ("172.16.0.1", Refusal::Private),
            ("172.31.255.254", Refusal::Private),
            ("192.168.1.1", Refusal::Private),
            ("100.64.0.1", Refusal::SharedAddressSpace),
            ("169.254.169.254", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("fd00:ec2::254", Refusal::UniqueLocal),
            ("fc00::1", Refusal::UniqueLocal),
            ("fec0::1", Refusal::UniqueLocal),
            ("0.0.0.0", Refusal::Unspecified),
            ("0.1.2.3", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("224.0.0.1", Refusal::Multicast),
            ("239.255.255.250", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
            ("255.255.255.255", Refusal::Broadcast),
            ("240.0.0.1", Refusal::Reserved),
            ("192.0.0.8", Refusal::Reserved),
            ("192.0.0.170", Refusal::Reserved),
            ("192.0.2.1", Refusal::Reserved),
            ("192.88.99.1", Refusal::Reserved),
            ("198.18.0.1", Refusal::Reserved),
            ("198.19.255.254", Refusal::Reserved),
            ("198.51.100.7", Refusal::Reserved),
            ("203.0.113.9", Refusal::Reserved),
            ("2002:a9fe:a9fe::1", Refusal::Reserved),
            ("2002:808:808::1", Refusal::Reserved),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Refusal::Reserved),
            ("64:ff9b:1::a9fe:a9fe", Refusal::Reserved),
            ("64:ff9b:1::808:808", Refusal::Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(why(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_the_ipv4_address() {
        assert_eq!(why("::ffff:127.0.0.1"), Some(Refusal::Loopback));
        assert_eq!(why("::ffff:169.254.169.254"), Some(Refusal::LinkLocal));
        assert_eq!(why("::10.0.0.1"), Some(Refusal::Private));
        assert_eq!(why("64:ff9b::a00:1"), Some(Refusal::Private));
    }

    #[test]
    fn a_refusal_reads_as_words() {
        assert_eq!(
            Refusal::LinkLocal.to_string(),
            "a link-local address (cloud metadata services live there)"
        );
    }
}
