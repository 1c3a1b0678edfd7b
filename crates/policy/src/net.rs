//! Egress grants: `scheme://host[:port]` patterns, and the address rules a connection must
//! pass after the name is resolved.
//!
//! A pattern without a port means the scheme's default port only (no implicit ports). A host
//! may start with `*.`, which matches every subdomain but not the domain itself. Loopback,
//! private, link-local, unique-local, unspecified, multicast and cloud-metadata addresses are
//! refused at connect time unless the pattern that allowed the request names that address
//! literally (or is `localhost`, for loopback): an allowed name that resolves to 10.0.0.1 or
//! 169.254.169.254 is denied.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An exact DNS name, lowercase.
    Name(String),
    /// `*.suffix`: any name ending in `.suffix`.
    Wildcard(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPattern {
    pub scheme: String,
    pub host: Host,
    pub port: u16,
    text: String,
}

impl fmt::Display for NetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The default port of a scheme Baton can reach.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl FromStr for NetPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "'{text}' is not a scheme://host[:port] pattern ({why}), e.g. \"https://api.example.com\" or \"http://127.0.0.1:8080\""
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default =
            default_port(&scheme).ok_or_else(|| bad("the scheme must be http or https"))?;
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "paths, queries and user info are not part of a pattern",
            ));
        }
        let (host, port) = split_host_port(rest).map_err(|e| bad(&e))?;
        let port = port.unwrap_or(default);
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            check_name(suffix).map_err(|e| bad(&e))?;
            Host::Wildcard(suffix.to_ascii_lowercase())
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Host::Ip(ip)
        } else {
            check_name(host).map_err(|e| bad(&e))?;
            Host::Name(host.to_ascii_lowercase())
        };
        Ok(Self {
            scheme,
            host,
            port,
            text: text.to_string(),
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an unclosed '['")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after ']'")?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("a bad port")
        })
        .transpose()?;
    Ok((host, port))
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("'{name}' is not a valid host name"))
    }
}

impl<'de> Deserialize<'de> for NetPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for NetPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl NetPattern {
    /// Whether a request to `scheme://host:port` is covered by this pattern.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if !self.scheme.eq_ignore_ascii_case(scheme) || self.port != port {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match &self.host {
            Host::Name(name) => name.eq_ignore_ascii_case(host),
            Host::Wildcard(suffix) => {
                let host = host.to_ascii_lowercase();
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            Host::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }

    /// Whether a connection to `addr` is allowed when this pattern allowed the request.
    pub fn allows_address(&self, addr: IpAddr) -> bool {
        match special(addr) {
            None => true,
            Some(_) => match &self.host {
                Host::Ip(ip) => *ip == addr,
                Host::Name(name) => name == "localhost" && addr.is_loopback(),
                Host::Wildcard(_) => false,
            },
        }
    }
}

/// Why an address is not public, if it is not.
pub fn special(addr: IpAddr) -> Option<&'static str> {
    let addr = match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match addr {
        IpAddr::V4(a) => {
            if a == Ipv4Addr::new(169, 254, 169, 254) || a == Ipv4Addr::new(100, 100, 100, 200) {
                Some("a cloud metadata address")
            } else if a.is_loopback() {
                Some("a loopback address")
            } else if a.is_private() || (a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64) {
                Some("a private address")
            } else if a.is_link_local() {
                Some("a link-local address")
            } else if a.is_unspecified() || a.octets()[0] == 0 {
                Some("an unspecified address")
            } else if a.is_multicast() || a.is_broadcast() {
                Some("a multicast or broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            if a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else if a.is_loopback() {
                Some("a loopback address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a unique-local address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if a.is_unspecified() {
                Some("an unspecified address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> NetPattern {
        text.parse().unwrap()
    }

    #[test]
    fn ports_are_never_implicit() {
        let api = p("https://api.example.com");
        assert!(api.matches("https", "api.example.com", 443));
        assert!(!api.matches("https", "api.example.com", 8443));
        assert!(!api.matches("http", "api.example.com", 80));
        let local = p("http://127.0.0.1:8080");
        assert!(local.matches("http", "127.0.0.1", 8080));
        assert!(!local.matches("http", "127.0.0.1", 8081));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let any = p("https://*.example.com");
        assert!(any.matches("https", "a.example.com", 443));
        assert!(any.matches("https", "a.b.example.com", 443));
        assert!(!any.matches("https", "example.com", 443));
        assert!(!any.matches("https", "badexample.com", 443));
        assert!(!any.matches("https", "example.com.evil.org", 443));
    }

    #[test]
    fn malformed_patterns_say_why() {
        for (text, why) in [
            ("api.example.com", "no scheme"),
            ("ftp://x.org", "http or https"),
            ("https://x.org/path", "paths"),
            ("https://x.org:99999", "bad port"),
            ("https://exa mple.org", "not a valid host name"),
            ("https://", "no host"),
            ("https://[::1", "unclosed"),
        ] {
            let err = text.parse::<NetPattern>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn special_addresses_need_a_literal_grant() {
        let name = p("http://internal.example.com");
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let private: IpAddr = "10.1.2.3".parse().unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        assert!(!name.allows_address(metadata));
        assert!(!name.allows_address(private));
        assert!(name.allows_address(public));
        assert!(p("http://10.1.2.3").allows_address(private));
        assert!(!p("http://10.1.2.4").allows_address(private));
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(p("http://localhost:8080").allows_address(loopback));
        assert!(!p("http://*.localhost").allows_address(loopback));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(special(mapped), Some("a private address"));
        assert_eq!(
            special("fd12::1".parse().unwrap()),
            Some("a unique-local address")
        );
        assert_eq!(
            special("[fd00:ec2::254]".trim_matches(['[', ']']).parse().unwrap()),
            Some("a cloud metadata address")
        );
    }
}
