//! The `allowlist` policy on Docker: a guard container sharing a sandbox's network
//! namespace holds its nftables rules (everything refused but the allowed addresses, the
//! model gateway and the environment's own networks) and a DNS filter (dnsmasq) that
//! answers allowed names only and adds their addresses to the rules as it resolves them.
//!
//! Why this shape: the sandbox's own image stays as the task wrote it (no tools, no
//! capability added to it), the rules live in the kernel of the sandbox's namespace so
//! every process and protocol is covered, and wildcards work because addresses are learnt
//! from the answers the sandbox itself gets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};

use super::allowlist::{AllowedHost, Allowlist};
use super::docker::{Container, DockerEngine};
use super::{EnvError, ExecSpec, Provider};

/// The guard's image: Debian with nftables and dnsmasq, and the user the DNS filter runs
/// as (its queries are the only ones that leave unredirected).
pub(crate) const DOCKERFILE: &str = "\
FROM debian:bookworm-slim
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends nftables dnsmasq-base >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && useradd --system --uid 64053 --no-create-home --shell /usr/sbin/nologin helios-dns
";

/// The uid of `helios-dns` in the guard's image.
const DNS_UID: u32 = 64053;

/// The nftables table the guard owns in the sandbox's namespace.
const TABLE: &str = "helios_guard";

/// How long the guard may take to load its rules and start its DNS filter.
const APPLY_DEADLINE: Duration = Duration::from_secs(30);

/// The guard image's tag: content-addressed, like every image helios builds.
pub(crate) fn image_tag() -> String {
    let mut digest = sha2::Sha256::default();
    sha2::Digest::update(&mut digest, DOCKERFILE.as_bytes());
    let hash = hex::encode(sha2::Digest::finalize(digest));
    format!("helios/netguard:{}", &hash[..12])
}

/// The nftables ruleset of `allowlist`: a fresh table (the previous one replaced in the
/// same transaction), DNS redirected to the filter, and an egress chain that refuses
/// what is not allowed (a reset for TCP, an ICMP error otherwise: refused at once rather
/// than left to time out).
pub(crate) fn ruleset(allowlist: &Allowlist) -> String {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for net in allowlist
        .hosts
        .iter()
        .filter_map(|h| match h {
            AllowedHost::Net(net) => Some(*net),
            _ => None,
        })
        .chain(allowlist.own_networks.iter().copied())
    {
        match net {
            ipnet::IpNet::V4(net) => v4.push(net.to_string()),
            ipnet::IpNet::V6(net) => v6.push(net.to_string()),
        }
    }
    let elements = |nets: &[String]| {
        if nets.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", nets.join(", "))
        }
    };
    let mut rules = format!(
        "table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \x20 set allowed4 {{ type ipv4_addr; flags interval; auto-merge;{} }}\n\
         \x20 set allowed6 {{ type ipv6_addr; flags interval; auto-merge;{} }}\n\
         \x20 chain dns {{\n\
         \x20   type nat hook output priority -110; policy accept;\n\
         \x20   meta skuid != {DNS_UID} udp dport 53 redirect to :53\n\
         \x20   meta skuid != {DNS_UID} tcp dport 53 redirect to :53\n\
         \x20 }}\n\
         \x20 chain embedded_dns {{\n\
         \x20 }}\n\
         \x20 chain egress {{\n\
         \x20   type filter hook output priority 0; policy drop;\n\
         \x20   oif \"lo\" accept\n\
         \x20   ct state established,related accept\n\
         \x20   meta skuid {DNS_UID} th dport 53 accept\n\
         \x20   th dport 53 jump embedded_dns\n",
        elements(&v4),
        elements(&v6),
    );
    if let Some(gateway) = allowlist.gateway {
        let family = if gateway.is_ipv4() { "ip" } else { "ip6" };
        let _ = writeln!(
            rules,
            "    {family} daddr {} tcp dport {} accept",
            gateway.ip(),
            gateway.port()
        );
    }
    rules.push_str(
        "    ip daddr @allowed4 accept\n\
         \x20   ip6 daddr @allowed6 accept\n\
         \x20   meta l4proto tcp reject with tcp reset\n\
         \x20   reject\n\
         \x20 }\n\
         }\n",
    );
    rules
}

/// dnsmasq's configuration for `allowlist`: allowed names forwarded to the sandbox's own
/// resolvers (written `@UPSTREAM@`, one line per resolver when the guard fills them in),
/// every other name refused, and the answers' addresses added to the rules' sets.
pub(crate) fn dnsmasq_conf(allowlist: &Allowlist) -> String {
    let mut conf = String::from(
        "listen-address=127.0.0.1\n\
         port=53\n\
         bind-interfaces\n\
         no-resolv\n\
         no-hosts\n\
         user=helios-dns\n\
         pid-file=/run/helios-guard/dnsmasq.pid\n",
    );
    let sets = format!("4#inet#{TABLE}#allowed4,6#inet#{TABLE}#allowed6");
    for host in &allowlist.hosts {
        match host {
            AllowedHost::Name(name) => {
                // The name itself; its subdomains answered "no such name" locally.
                let _ = writeln!(conf, "server=/{name}/@UPSTREAM@");
                let _ = writeln!(conf, "server=/*.{name}/");
                let _ = writeln!(conf, "nftset=/{name}/{sets}");
            }
            AllowedHost::Subdomains(name) => {
                let _ = writeln!(conf, "server=/*.{name}/@UPSTREAM@");
                let _ = writeln!(conf, "nftset=/{name}/{sets}");
            }
            AllowedHost::Net(_) => {}
        }
    }
    // The sandbox's own services (a Compose task's), by their names.
    for name in &allowlist.own_names {
        let _ = writeln!(conf, "server=/{name}/@UPSTREAM@");
    }
    conf
}

/// The script the guard runs to take `allowlist` on: its files written, the rules loaded
/// in one transaction, the DNS filter restarted with the sandbox's resolvers as upstreams.
/// Docker's embedded resolver (`127.0.0.11`) forwards the names it does not know itself
/// from inside the namespace as root: only then are root's DNS queries let out.
fn apply_script(allowlist: &Allowlist) -> String {
    format!(
        "set -eu\n\
         mkdir -p /run/helios-guard\n\
         cd /run/helios-guard\n\
         cat > rules.nft <<'HELIOS_RULES'\n{rules}HELIOS_RULES\n\
         cat > dnsmasq.template <<'HELIOS_DNS'\n{dns}HELIOS_DNS\n\
         awk 'NR == FNR {{ if ($1 == \"nameserver\") ns[++n] = $2; next }}\n\
              /@UPSTREAM@/ {{ for (i = 1; i <= n; i++) {{ line = $0; sub(/@UPSTREAM@/, ns[i], line); print line }} next }}\n\
              {{ print }}' /etc/resolv.conf dnsmasq.template > dnsmasq.conf\n\
         {stop}\
         nft -f rules.nft\n\
         if grep -q '^nameserver 127\\.' /etc/resolv.conf; then\n\
         \x20 nft add rule inet {TABLE} embedded_dns meta skuid 0 accept\n\
         fi\n\
         dnsmasq --conf-file=/run/helios-guard/dnsmasq.conf\n",
        rules = ruleset(allowlist),
        dns = dnsmasq_conf(allowlist),
        stop = STOP_DNS,
    )
}

/// Stops the DNS filter, if it runs, and waits until it is gone.
const STOP_DNS: &str = "\
if [ -f /run/helios-guard/dnsmasq.pid ]; then
  pid=$(cat /run/helios-guard/dnsmasq.pid)
  kill \"$pid\" 2>/dev/null || true
  while kill -0 \"$pid\" 2>/dev/null; do sleep 0.05; done
  rm -f /run/helios-guard/dnsmasq.pid
fi
";

/// The script that lifts the policy: rules and DNS filter gone, the sandbox as public as
/// its networks make it.
fn clear_script() -> String {
    format!("set -eu\n{STOP_DNS}nft delete table inet {TABLE} 2>/dev/null || true\n")
}

/// A sandbox's guard, started by its first `allowlist` phase and removed with it.
#[derive(Default)]
pub(crate) struct Guard(tokio::sync::Mutex<Option<Container>>);

impl Guard {
    /// Puts `allowlist` in force in `sandbox`'s namespace, or lifts the one in force.
    pub(crate) async fn set(
        &self,
        engine: &DockerEngine,
        sandbox: &Container,
        allowlist: Option<&Allowlist>,
    ) -> Result<(), EnvError> {
        let mut guard = self.0.lock().await;
        match (allowlist, guard.as_ref()) {
            (Some(allowlist), Some(guard)) => engine.apply_guard(guard, allowlist).await,
            (Some(allowlist), None) => {
                let started = engine.start_guard(sandbox).await?;
                let applied = engine.apply_guard(&started, allowlist).await;
                *guard = Some(started);
                applied
            }
            (None, Some(guard)) => engine.clear_guard(guard).await,
            (None, None) => Ok(()),
        }
    }

    /// Removes the guard, if there is one: before its sandbox, whose namespace it shares.
    pub(crate) async fn remove(&self, engine: &DockerEngine) -> Result<(), EnvError> {
        match self.0.lock().await.take() {
            Some(guard) => engine.remove_container(&guard).await.map(|_| ()),
            None => Ok(()),
        }
    }
}

impl DockerEngine {
    /// The guard's image, built once per engine (and found again by its tag after).
    async fn guard_image(&self) -> Result<String, EnvError> {
        let tag = image_tag();
        if self.has_image(&tag).await? {
            return Ok(tag);
        }
        let _building = self.guard_build_lock().lock().await;
        if self.has_image(&tag).await? {
            return Ok(tag);
        }
        let dir = tempfile::tempdir().map_err(|e| EnvError::io("a build context", e))?;
        std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE)
            .map_err(|e| EnvError::io("the guard's Dockerfile", e))?;
        let log = std::env::temp_dir().join(format!("helios-netguard-{}.log", std::process::id()));
        let labels = BTreeMap::from([(super::MANAGED_LABEL.to_string(), "true".to_string())]);
        self.build_image(
            dir.path(),
            "Dockerfile",
            &tag,
            &labels,
            Duration::from_secs(600),
            &log,
        )
        .await?;
        Ok(tag)
    }

    /// Starts the guard of `sandbox`, in its network namespace, labelled as it is (so that
    /// whatever finds the sandbox's leftovers finds the guard's too).
    pub(crate) async fn start_guard(&self, sandbox: &Container) -> Result<Container, EnvError> {
        let image = self.guard_image().await?;
        let labels = self
            .inspect(sandbox)
            .await?
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default();
        let body = ContainerCreateBody {
            image: Some(image),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            labels: Some(labels.into_iter().collect()),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{}", sandbox.id)),
                cap_add: Some(vec!["NET_ADMIN".into()]),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.launch(body).await
    }

    /// Puts `allowlist` in force in the namespace `guard` shares.
    pub(crate) async fn apply_guard(
        &self,
        guard: &Container,
        allowlist: &Allowlist,
    ) -> Result<(), EnvError> {
        self.guard_exec(guard, apply_script(allowlist), "apply the allowlist")
            .await
    }

    /// Lifts the policy `guard` holds.
    pub(crate) async fn clear_guard(&self, guard: &Container) -> Result<(), EnvError> {
        self.guard_exec(guard, clear_script(), "lift the allowlist")
            .await
    }

    async fn guard_exec(
        &self,
        guard: &Container,
        script: String,
        what: &str,
    ) -> Result<(), EnvError> {
        let spec = ExecSpec {
            command: script,
            deadline: Some(APPLY_DEADLINE),
            ..ExecSpec::default()
        };
        let output = self.exec_with(guard, &spec, "sh").await?;
        if output.exit_code == Some(0) {
            return Ok(());
        }
        Err(EnvError::Engine {
            provider: Provider::Docker,
            message: format!(
                "the network guard could not {what} (exit {:?}): {}{}",
                output.exit_code,
                output.stderr.trim(),
                if output.timed_out { " (timed out)" } else { "" }
            ),
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::allowlist::parse_hosts;

    fn allowlist() -> Allowlist {
        Allowlist {
            hosts: parse_hosts(&["pypi.org", "*.github.com", "10.0.0.0/8", "fd00::1"]).unwrap(),
            gateway: Some("172.17.0.1:4000".parse().unwrap()),
            own_networks: vec!["172.30.0.0/16".parse().unwrap()],
            own_names: vec!["api".into()],
        }
    }

    #[test]
    fn the_rules_refuse_all_but_allowed_ranges_the_gateway_and_own_networks() {
        let rules = ruleset(&allowlist());
        assert!(rules.contains("policy drop"));
        assert!(rules.contains("elements = { 10.0.0.0/8, 172.30.0.0/16 }"));
        assert!(rules.contains("elements = { fd00::1/128 }"));
        assert!(rules.contains("ip daddr 172.17.0.1 tcp dport 4000 accept"));
        assert!(rules.contains(&format!("meta skuid != {DNS_UID} udp dport 53 redirect")));
        // The table is replaced, not added to, when a phase changes the list.
        assert!(rules.starts_with("table inet helios_guard\ndelete table inet helios_guard\n"));
    }

    #[test]
    fn dns_answers_exact_names_and_wildcards_subdomains_only() {
        let conf = dnsmasq_conf(&allowlist());
        assert!(conf.contains("server=/pypi.org/@UPSTREAM@\nserver=/*.pypi.org/\n"));
        assert!(conf.contains("server=/*.github.com/@UPSTREAM@\n"));
        assert!(!conf.contains("server=/github.com/"));
        assert!(conf.contains("nftset=/github.com/4#inet#helios_guard#allowed4"));
        assert!(conf.contains("no-resolv"));
        // Own services by their names.
        assert!(conf.contains("server=/api/@UPSTREAM@"));
    }

    #[test]
    fn the_guard_image_tag_follows_its_dockerfile() {
        assert!(image_tag().starts_with("helios/netguard:"));
        assert_eq!(image_tag().len(), "helios/netguard:".len() + 12);
    }
}
