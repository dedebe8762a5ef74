//! `allowlist` enforced end to end in Docker: an agent reaches the hosts its phase allows
//! (names, `*.` wildcards, addresses) and nothing else (not by name, not by address, not
//! through DNS), and the policy is lifted for a phase that does not have it. Every host is
//! a container on this machine; nothing outside it is needed.

mod common;

use std::process::Command;

use common::project::{Project, copy_tree, text};

/// A throwaway HTTP server container answering its own name, removed on drop.
struct Host {
    id: String,
}

impl Host {
    /// Starts `name` on `network` (`--network-alias name`, and `ip` when given).
    fn start(label: &str, network: &str, name: &str, ip: Option<&str>) -> Host {
        let mut command = Command::new("docker");
        command.args(["run", "-d", "--rm", "--label", label, "--network", network]);
        if network != "bridge" {
            command.args(["--network-alias", name]);
        }
        if let Some(ip) = ip {
            command.args(["--ip", ip]);
        }
        let short = name.split('.').next().unwrap();
        let server = format!(
            "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, \
             ReuseAddr => 1) or die $!; while (my $c = $s->accept) {{ <$c>; print $c \
             \"HTTP/1.0 200 OK\\r\\n\\r\\n{short}\\n\"; close $c }}"
        );
        let out = command
            .args(["debian:bookworm-slim", "perl", "-e", &server])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Host {
            id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }

    /// Its address on the default bridge.
    fn address(&self) -> String {
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &self.id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

/// A shell function printing what `http://$1/` answers (its last line), or nothing.
const FETCH: &str = "fetch() { timeout 5 bash -c \"exec 3<>/dev/tcp/$1/80 && printf 'GET / \
                     HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3\" 2>/dev/null | tail -n 1; }\n";

/// Two hosts on the default bridge, `allowed` and `blocked`, reachable by address only.
fn bridge_hosts(label: &str) -> (Host, Host) {
    (
        Host::start(label, "bridge", "allowed", None),
        Host::start(label, "bridge", "blocked", None),
    )
}

/// This machine's test network, removed on drop (after its hosts).
struct TestNetwork {
    name: String,
}

impl TestNetwork {
    fn create(name: &str, subnet: &str, label: &str) -> TestNetwork {
        let _ = Command::new("docker")
            .args(["network", "rm", name])
            .output();
        let out = Command::new("docker")
            .args([
                "network", "create", "--label", label, "--subnet", subnet, name,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        TestNetwork {
            name: name.to_string(),
        }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.name])
            .output();
    }
}

#[test]
fn compose_phases_under_an_allowlist_or_no_network_reach_only_what_they_may() {
    let project = Project::new("allowlist");
    std::fs::create_dir_all(project.path("tasks")).unwrap();
    for task in ["allowlist-hosts", "compose-no-network-agent"] {
        copy_tree(
            format!("tests/fixtures/allowlist/{task}"),
            project.path("tasks"),
        );
    }
    // The fixture's Compose file names this network; its hosts have fixed addresses.
    let network = TestNetwork::create("helios-allowlist-test", "10.213.7.0/24", &project.label);
    let hosts = [
        Host::start(
            &project.label,
            &network.name,
            "allowed.helios.test",
            Some("10.213.7.10"),
        ),
        Host::start(
            &project.label,
            &network.name,
            "api.wild.helios.test",
            Some("10.213.7.20"),
        ),
        Host::start(
            &project.label,
            &network.name,
            "blocked.helios.test",
            Some("10.213.7.30"),
        ),
    ];
    project.pipeline("p", "\"oracle\", \"nop\"");
    let out = project.apply("p");
    let results = project.results("p");
    assert_eq!(out.status.code(), Some(0), "{}\n{results:#?}", text(&out));
    let oracle = &results["allowlist-hosts/oracle"];
    let tests_said = std::fs::read_to_string(
        project
            .trial_dir("p", "allowlist-hosts", "oracle")
            .join("verifier/test-stdout.txt"),
    )
    .unwrap_or_default();
    assert_eq!(oracle["reward"], 1.0, "{oracle}\n{tests_said}");
    assert_eq!(
        oracle["network"],
        serde_json::json!({"environment": "public", "agent": "allowlist", "verifier": "public"})
    );
    assert_eq!(results["allowlist-hosts/nop"]["reward"], 0.0);

    // A Compose task whose agent phase has no network: the guard closes it, sidecar too.
    let oracle = &results["compose-no-network-agent/oracle"];
    assert_eq!(oracle["reward"], 1.0, "{oracle}");
    assert_eq!(
        oracle["network"],
        serde_json::json!({"environment": "public", "agent": "no-network", "verifier": "public"})
    );
    assert_eq!(results["compose-no-network-agent/nop"]["reward"], 0.0);
    drop(hosts);
    project.assert_clean();
}

#[test]
fn an_allowlist_of_addresses_holds_for_one_container_and_is_lifted_for_the_tests() {
    let project = Project::new("allowlist-addresses");
    let (allowed, blocked) = bridge_hosts(&project.label);
    let (allowed_ip, blocked_ip) = (allowed.address(), blocked.address());
    let fetch = FETCH;
    project.task(
        "addresses",
        &format!(
            "[agent]\ntimeout_sec = 60.0\nnetwork_mode = \"allowlist\"\n\
             allowed_hosts = [\"{allowed_ip}\"]\n[verifier]\ntimeout_sec = 30.0\n"
        ),
        &format!(
            "#!/bin/bash\n{fetch}{{ echo \"allowed=$(fetch {allowed_ip})\"; \
             echo \"blocked=$(fetch {blocked_ip})\"; \
             echo \"dns=$(getent hosts deb.debian.org >/dev/null && echo resolved)\"; }} \
             > /app/reached.txt\n"
        ),
        &format!(
            "#!/bin/bash\n{fetch}cat /app/reached.txt\n\
             if [ \"$(cat /app/reached.txt)\" = \"$(printf 'allowed=allowed\\nblocked=\\ndns=')\" ] \
             && [ \"$(fetch {blocked_ip})\" = blocked ]; then echo 1; else echo 0; fi \
             > /logs/verifier/reward.txt\n"
        ),
    );
    project.pipeline("p", "\"oracle\", \"nop\"");
    let out = project.apply("p");
    let results = project.results("p");
    assert_eq!(out.status.code(), Some(0), "{}\n{results:#?}", text(&out));
    let oracle = &results["addresses/oracle"];
    assert_eq!(oracle["reward"], 1.0, "{oracle}");
    assert_eq!(oracle["network"]["agent"], "allowlist", "{oracle}");
    assert_eq!(results["addresses/nop"]["reward"], 0.0);
    drop((allowed, blocked));
    project.assert_clean();
}

#[test]
fn a_separate_verifier_under_an_allowlist_reaches_its_host_and_nothing_else() {
    let project = Project::new("allowlist-verifier");
    let (allowed, blocked) = bridge_hosts(&project.label);
    let (allowed_ip, blocked_ip) = (allowed.address(), blocked.address());
    let fetch = FETCH;
    project.task(
        "separate",
        &format!(
            "artifacts = [\"/app/done.txt\"]\n[agent]\ntimeout_sec = 60.0\n\
             [verifier]\ntimeout_sec = 30.0\nenvironment_mode = \"separate\"\n\
             [verifier.environment]\nnetwork_mode = \"allowlist\"\n\
             allowed_hosts = [\"{allowed_ip}\"]\n"
        ),
        "#!/bin/bash\necho done > /app/done.txt\n",
        &format!(
            "#!/bin/bash\n{fetch}reached=\"$(fetch {allowed_ip}) $(fetch {blocked_ip})\"\n\
             echo \"$reached\"\n\
             if [ -f /app/done.txt ] && [ \"$reached\" = \"allowed \" ]; then echo 1; else echo 0; fi \
             > /logs/verifier/reward.txt\n"
        ),
    );
    project.write(
        "tasks/separate/tests/Dockerfile",
        "FROM debian:bookworm-slim\nLABEL fixture=separate-allowlist\nCOPY test.sh /tests/test.sh\n",
    );
    project.pipeline("p", "\"oracle\", \"nop\"");
    let out = project.apply("p");
    let results = project.results("p");
    assert_eq!(out.status.code(), Some(0), "{}\n{results:#?}", text(&out));
    assert_eq!(results["separate/oracle"]["reward"], 1.0, "{results:#?}");
    assert_eq!(results["separate/nop"]["reward"], 0.0);
    drop((allowed, blocked));
    project.assert_clean();
}
