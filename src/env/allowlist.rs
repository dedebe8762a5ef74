//! The `allowlist` network policy, whatever the provider: what a task may reach (host
//! names, `*.` wildcards, addresses and CIDR ranges), parsed and checked once.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// One entry of a task's `allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllowedHost {
    /// Exactly this name (`pypi.org`), not its subdomains.
    Name(String),
    /// Every subdomain of this name (`*.github.com`: `api.github.com`, not `github.com`).
    Subdomains(String),
    /// An address or a range of them (`10.0.0.5`, `10.0.0.0/8`).
    Net(IpNet),
}

/// Why an `allowed_hosts` entry is not one helios can enforce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not a host name, a `*.` wildcard, an IP address or a CIDR range: {why}")]
pub struct BadHost {
    pub entry: String,
    pub why: &'static str,
}

impl FromStr for AllowedHost {
    type Err = BadHost;

    fn from_str(entry: &str) -> Result<AllowedHost, BadHost> {
        let bad = |why| BadHost {
            entry: entry.to_string(),
            why,
        };
        let trimmed = entry.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Ok(net) = trimmed.parse::<IpNet>() {
            return Ok(AllowedHost::Net(net.trunc()));
        }
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return Ok(AllowedHost::Net(IpNet::from(ip)));
        }
        if trimmed.contains("://") || trimmed.contains('/') {
            return Err(bad("give the host alone, without a scheme or a path"));
        }
        if trimmed.contains(':') {
            return Err(bad(
                "ports are not part of an entry: every port of an allowed host is reachable",
            ));
        }
        let (wildcard, name) = match trimmed.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if name.contains('*') {
            return Err(bad(
                "a wildcard is only `*.` at the start (`*.example.com`)",
            ));
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(bad(
                "a name is dot-separated labels of letters, digits, `-` and `_`",
            ));
        }
        Ok(if wildcard {
            AllowedHost::Subdomains(name)
        } else {
            AllowedHost::Name(name)
        })
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedHost::Name(name) => f.write_str(name),
            AllowedHost::Subdomains(name) => write!(f, "*.{name}"),
            AllowedHost::Net(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            AllowedHost::Net(net) => write!(f, "{net}"),
        }
    }
}

/// Parses every entry of an `allowed_hosts` list; the first bad one is the error.
pub fn parse_hosts<S: AsRef<str>>(entries: &[S]) -> Result<Vec<AllowedHost>, BadHost> {
    let mut hosts: Vec<AllowedHost> = entries
        .iter()
        .map(|e| e.as_ref().parse())
        .collect::<Result<_, _>>()?;
    hosts.sort();
    hosts.dedup();
    Ok(hosts)
}

/// What a sandbox may reach in a phase under `allowlist`: its allowed hosts, the model
/// gateway, and the networks of its own environment (a Compose task's services).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    pub hosts: Vec<AllowedHost>,
    /// The model gateway's address as the sandbox sees it: always reachable.
    pub gateway: Option<SocketAddr>,
    /// Ranges of the environment's own (the sidecars' network): always reachable.
    pub own_networks: Vec<IpNet>,
    /// The names of the environment's own services, resolved as they are.
    pub own_names: Vec<String>,
}

impl Allowlist {
    /// The entries as the task wrote them, for results and messages.
    pub fn describe(&self) -> Vec<String> {
        self.hosts.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_wildcards_addresses_and_ranges_parse() {
        assert_eq!(
            "PyPI.org.".parse::<AllowedHost>().unwrap(),
            AllowedHost::Name("pypi.org".into())
        );
        assert_eq!(
            "*.github.com".parse::<AllowedHost>().unwrap(),
            AllowedHost::Subdomains("github.com".into())
        );
        assert_eq!(
            "10.1.2.3".parse::<AllowedHost>().unwrap().to_string(),
            "10.1.2.3"
        );
        assert_eq!(
            "10.1.2.3/8".parse::<AllowedHost>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "fd00::/8".parse::<AllowedHost>().unwrap().to_string(),
            "fd00::/8"
        );
    }

    #[test]
    fn entries_helios_cannot_enforce_say_why() {
        for (entry, why) in [
            ("https://pypi.org", "scheme"),
            ("pypi.org:443", "ports"),
            ("api.*.com", "wildcard"),
            ("*", "wildcard"),
            ("bad host", "labels"),
            ("-bad.com", "labels"),
            ("", "empty"),
        ] {
            let error = entry.parse::<AllowedHost>().unwrap_err();
            assert!(error.to_string().contains(why), "{entry}: {error}");
        }
    }

    #[test]
    fn a_list_is_sorted_and_without_repeats() {
        let hosts = parse_hosts(&["b.com", "a.com", "B.com"]).unwrap();
        assert_eq!(
            hosts,
            vec![
                AllowedHost::Name("a.com".into()),
                AllowedHost::Name("b.com".into())
            ]
        );
    }
}
