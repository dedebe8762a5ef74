//! Checks of a task directory beyond its schema: required files, contradictions, env syntax.

use std::path::Path;

use super::document::{Document, pointer_push};
use super::env_expand;
use super::task::{NetworkMode, TaskManifest};
use crate::diagnostic::{Code, Diagnostic};

pub(crate) fn check(
    dir: &Path,
    manifest_path: &Path,
    task: &TaskManifest,
    doc: &Document,
) -> Vec<Diagnostic> {
    let mut out = required_files(dir, task);
    let env = &task.environment;
    let conflict = |key: &str, other: &str, hint: &str| {
        Diagnostic::error(
            Code::Conflict,
            manifest_path,
            format!(
                "`environment.{key}` and `environment.{other}` are both set, to different values"
            ),
        )
        .at(doc.key_span(&format!("/environment/{key}")))
        .label("conflicts")
        .hint(hint.to_string())
    };
    // As Harbor: the deprecated size and the new one may both be there if they agree.
    if let (Some(old), Some(new)) = (env.memory, env.memory_mb)
        && old.megabytes() != new
    {
        out.push(conflict(
            "memory",
            "memory_mb",
            "keep only `memory_mb` (`memory` is its deprecated form)",
        ));
    }
    if let (Some(old), Some(new)) = (env.storage, env.storage_mb)
        && old.megabytes() != new
    {
        out.push(conflict(
            "storage",
            "storage_mb",
            "keep only `storage_mb` (`storage` is its deprecated form)",
        ));
    }
    // As Harbor: the new key wins over its deprecated form; a contradiction is said.
    if let (Some(allowed), Some(mode)) = (env.allow_internet, env.network_mode)
        && allowed != (mode != NetworkMode::NoNetwork)
    {
        out.push(
            Diagnostic::warning(
                Code::Conflict,
                manifest_path,
                format!(
                    "`environment.allow_internet = {allowed}` contradicts `network_mode = \"{}\"`, which wins",
                    mode.as_str()
                ),
            )
            .at(doc.key_span("/environment/allow_internet"))
            .label("ignored")
            .hint("keep only `network_mode` (`allow_internet` is its deprecated form)"),
        );
    }
    if let (Some(old), Some(new)) = (&task.version, &task.schema_version)
        && old != new
    {
        out.push(
            Diagnostic::warning(
                Code::Conflict,
                manifest_path,
                format!(
                    "`version = \"{old}\"` contradicts `schema_version = \"{new}\"`, which wins"
                ),
            )
            .at(doc.key_span("/version"))
            .label("ignored")
            .hint("keep only `schema_version` (`version` is its deprecated form)"),
        );
    }
    let mode = env.resolved_network_mode();
    if mode == NetworkMode::Allowlist && env.allowed_hosts.is_empty() {
        // Harbor's meaning: every destination refused (but the model gateway).
        out.push(
            Diagnostic::warning(
                Code::Conflict,
                manifest_path,
                "`network_mode = \"allowlist\"` allows no host: only the model gateway is reachable",
            )
            .at(doc.value_span("/environment/network_mode"))
            .label("no `allowed_hosts`")
            .hint("list the hosts the task may reach in `allowed_hosts = [\"pypi.org\"]`, or say \"no-network\""),
        );
    }
    let hosts = std::iter::once(("/environment/allowed_hosts".to_string(), &env.allowed_hosts))
        .chain(
            [
                (
                    "/agent/allowed_hosts".to_string(),
                    &task.agent.allowed_hosts,
                ),
                (
                    "/verifier/allowed_hosts".to_string(),
                    &task.verifier.allowed_hosts,
                ),
            ]
            .into_iter()
            .chain(task.steps.iter().enumerate().flat_map(|(i, step)| {
                [
                    (
                        format!("/steps/{i}/agent/allowed_hosts"),
                        &step.agent.allowed_hosts,
                    ),
                    (
                        format!("/steps/{i}/verifier/allowed_hosts"),
                        &step.verifier.allowed_hosts,
                    ),
                ]
            }))
            .filter_map(|(pointer, hosts)| Some((pointer, hosts.as_ref()?))),
        );
    for (pointer, hosts) in hosts {
        for (i, entry) in hosts.iter().enumerate() {
            if let Err(bad) = entry.parse::<crate::env::AllowedHost>() {
                out.push(
                    Diagnostic::error(Code::InvalidValue, manifest_path, bad.to_string())
                        .at(doc.value_span(&format!("{pointer}/{i}")))
                        .label("not enforceable")
                        .hint("write `pypi.org`, `*.github.com`, `10.0.0.5` or `10.0.0.0/8`"),
                );
            }
        }
    }
    if mode != NetworkMode::Allowlist && !env.allowed_hosts.is_empty() {
        out.push(
            Diagnostic::error(
                Code::Conflict,
                manifest_path,
                "`allowed_hosts` is set but `network_mode` is not \"allowlist\"",
            )
            .at(doc.key_span("/environment/allowed_hosts"))
            .label("has no effect")
            .hint("set `network_mode = \"allowlist\"`, or remove `allowed_hosts`"),
        );
    }
    for (section, vars) in [
        ("environment", &env.env),
        ("verifier", &task.verifier.env),
        ("solution", &task.solution.env),
    ] {
        let base = format!("/{section}/env");
        out.extend(env_syntax(manifest_path, doc, &base, vars));
    }
    for (i, step) in task.steps.iter().enumerate() {
        let base = format!("/steps/{i}/verifier/env");
        out.extend(env_syntax(manifest_path, doc, &base, &step.verifier.env));
    }
    let error = |code: Code, pointer: &str, message: String, label: &str, hint: &str| {
        Diagnostic::error(code, manifest_path, message)
            .at(doc.value_span(pointer))
            .label(label.to_string())
            .hint(hint.to_string())
    };
    if let Some(package) = &task.task
        && package.name.contains("..")
    {
        out.push(error(
            Code::InvalidValue,
            "/task/name",
            format!("`task.name` \"{}\" contains `..`", package.name),
            "not a package name",
            "write `org/name` with letters, digits, `.`, `_` and `-`",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, step) in task.steps.iter().enumerate() {
        if !seen.insert(step.name.as_str()) {
            out.push(error(
                Code::Duplicate,
                &format!("/steps/{i}/name"),
                format!("two steps are named `{}`", step.name),
                "named before",
                "give each step its own name (its directory under `steps/`)",
            ));
        }
        if step.name.contains('/') || step.name == "." || step.name == ".." {
            out.push(error(
                Code::InvalidValue,
                &format!("/steps/{i}/name"),
                format!("step name `{}` is not a directory name", step.name),
                "not a name",
                "name the step after its directory under `steps/`",
            ));
        }
    }
    let verifiers = std::iter::once(("/verifier".to_string(), &task.verifier)).chain(
        task.steps
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("/steps/{i}/verifier"), &s.verifier)),
    );
    for (base, verifier) in verifiers {
        if verifier.environment_mode == Some(crate::verify::Isolation::Shared)
            && verifier.environment.is_some()
        {
            out.push(error(
                Code::Conflict,
                &format!("{base}/environment_mode"),
                "`environment_mode = \"shared\"` with a `[verifier.environment]` table".into(),
                "conflicts",
                "a shared verifier runs in the agent's environment: remove the table, or say \"separate\"",
            ));
        }
        out.extend(phase_hosts(
            manifest_path,
            doc,
            &base,
            verifier.network_mode,
            &verifier.allowed_hosts,
        ));
        for (i, hook) in verifier.collect.iter().enumerate() {
            if let Some(service) = &hook.service {
                out.extend(service_name(
                    manifest_path,
                    doc,
                    &format!("{base}/collect/{i}/service"),
                    service,
                ));
            }
        }
    }
    out.extend(phase_hosts(
        manifest_path,
        doc,
        "/agent",
        task.agent.network_mode,
        &task.agent.allowed_hosts,
    ));
    for (i, step) in task.steps.iter().enumerate() {
        out.extend(phase_hosts(
            manifest_path,
            doc,
            &format!("/steps/{i}/agent"),
            step.agent.network_mode,
            &step.agent.allowed_hosts,
        ));
    }
    let artifacts = task
        .artifacts
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("/artifacts/{i}"), a))
        .chain(task.steps.iter().enumerate().flat_map(|(s, step)| {
            step.artifacts
                .iter()
                .enumerate()
                .map(move |(i, a)| (format!("/steps/{s}/artifacts/{i}"), a))
        }));
    for (pointer, artifact) in artifacts {
        out.extend(artifact_checks(manifest_path, doc, &pointer, artifact));
    }
    for (i, server) in task.environment.mcp_servers.iter().enumerate() {
        use super::task::McpTransport;
        let pointer = format!("/environment/mcp_servers/{i}");
        let missing = match server.transport {
            McpTransport::Stdio if server.command.as_deref().is_none_or(str::is_empty) => Some((
                "command",
                "a `stdio` server needs the `command` that starts it",
            )),
            McpTransport::Sse | McpTransport::StreamableHttp | McpTransport::Http
                if server.url.as_deref().is_none_or(str::is_empty) =>
            {
                Some((
                    "url",
                    "an `sse` or `streamable-http` server needs its `url`",
                ))
            }
            _ => None,
        };
        if let Some((key, hint)) = missing {
            out.push(
                Diagnostic::error(
                    Code::MissingKey,
                    manifest_path,
                    format!("MCP server `{}` has no `{key}`", server.name),
                )
                .at(doc.key_span(&pointer))
                .label(format!("`{key}` is missing here"))
                .hint(hint),
            );
        }
    }
    // Harbor's quiet trap: a `[verifier.environment]` table that says nothing of the network
    // is public, whatever the task's environment is.
    let verifiers = std::iter::once(("/verifier".to_string(), &task.verifier, None)).chain(
        task.steps.iter().enumerate().map(|(i, s)| {
            (
                format!("/steps/{i}/verifier"),
                &s.verifier,
                Some(&task.verifier),
            )
        }),
    );
    for (base, verifier, parent) in verifiers {
        let Some(own) = verifier.environment.as_deref() else {
            continue;
        };
        let phase_mode = verifier
            .network_mode
            .or(parent.and_then(|p| p.network_mode));
        if verifier.harbor_mode() == Some(crate::verify::Isolation::Separate)
            && own.network_mode.is_none()
            && own.allow_internet.is_none()
            && phase_mode.is_none()
            && task.environment.resolved_network_mode() != NetworkMode::Public
        {
            out.push(
                Diagnostic::warning(
                    Code::Conflict,
                    manifest_path,
                    format!(
                        "the separate verifier of `{}` has network access though the task's environment has none",
                        super::schema::dotted(&base)
                    ),
                )
                .at(doc.key_span(&format!("{base}/environment")))
                .label("`network_mode` defaults to \"public\" here")
                .hint("say `network_mode = \"no-network\"` in this table if the tests must not reach the network"),
            );
        }
    }
    for unsupported in super::task_support::unsupported(dir, task) {
        let mut d = Diagnostic::warning(Code::Unsupported, manifest_path, unsupported.message);
        if !unsupported.pointer.is_empty() {
            d = d.at(doc.key_span(&unsupported.pointer));
        }
        d = d.hint(if unsupported.refused {
            "`apply` refuses trials of this task until helios supports it"
        } else {
            "trials run without it"
        });
        out.push(d);
    }
    out
}

/// `allowed_hosts` of a phase (`[agent]`, `[verifier]`, a step's) without `allowlist`.
fn phase_hosts(
    file: &Path,
    doc: &Document,
    base: &str,
    mode: Option<NetworkMode>,
    hosts: &Option<Vec<String>>,
) -> Option<Diagnostic> {
    if hosts.is_none() || mode == Some(NetworkMode::Allowlist) {
        return None;
    }
    Some(
        Diagnostic::error(
            Code::Conflict,
            file,
            format!(
                "`{}.allowed_hosts` is set but `{}.network_mode` is not \"allowlist\"",
                super::schema::dotted(base),
                super::schema::dotted(base)
            ),
        )
        .at(doc.key_span(&format!("{base}/allowed_hosts")))
        .label("has no effect")
        .hint("set `network_mode = \"allowlist\"` beside it, or remove `allowed_hosts`"),
    )
}

/// A Compose service's name, as Harbor allows it.
fn service_name(file: &Path, doc: &Document, pointer: &str, service: &str) -> Option<Diagnostic> {
    let mut chars = service.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (!valid).then(|| {
        Diagnostic::error(
            Code::InvalidValue,
            file,
            format!("`{service}` is not a Compose service name"),
        )
        .at(doc.value_span(pointer))
        .label("not a service name")
        .hint("letters, digits, `_`, `.` and `-`, starting with a letter or digit; `main` is the agent's container")
    })
}

/// An artifact's paths: a source without `..`, a relative destination inside `artifacts/`.
fn artifact_checks(
    file: &Path,
    doc: &Document,
    pointer: &str,
    artifact: &super::task::Artifact,
) -> Vec<Diagnostic> {
    let spec = artifact.spec();
    let mut out = Vec::new();
    let source_at = match artifact {
        super::task::Artifact::Path(_) => pointer.to_string(),
        super::task::Artifact::Spec(_) => format!("{pointer}/source"),
    };
    if spec.source.split('/').any(|part| part == "..") {
        out.push(
            Diagnostic::error(
                Code::InvalidValue,
                file,
                format!("artifact `{}` climbs out with `..`", spec.source),
            )
            .at(doc.value_span(&source_at))
            .label("`..` is not allowed")
            .hint("name the file or directory by its absolute path in the environment"),
        );
    }
    if let Some(service) = &spec.service {
        out.extend(service_name(
            file,
            doc,
            &format!("{pointer}/service"),
            service,
        ));
        if service != "main" && !spec.source.starts_with('/') {
            out.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    file,
                    format!(
                        "artifact `{}` of service `{service}` is not an absolute path",
                        spec.source
                    ),
                )
                .at(doc.value_span(&source_at))
                .label("relative")
                .hint("a sidecar has no working directory helios knows: give the absolute path"),
            );
        }
    }
    if let Some(destination) = spec.destination.as_deref().filter(|d| !d.is_empty()) {
        let problem = if destination.starts_with('/') {
            Some("is absolute")
        } else if destination.contains('\\') {
            Some("has a backslash")
        } else if destination.split('/').any(|part| part == "..") {
            Some("climbs out with `..`")
        } else if destination.trim_end_matches('/') == "manifest.json" {
            Some("is `manifest.json`, which helios writes itself")
        } else {
            None
        };
        if let Some(problem) = problem {
            out.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    file,
                    format!("artifact destination `{destination}` {problem}"),
                )
                .at(doc.value_span(&format!("{pointer}/destination")))
                .label("not a path inside `artifacts/`")
                .hint("write a relative path such as `logs/app.log`"),
            );
        }
    }
    out
}

/// Checks `${VAR}` references in an `env` table; shared by tasks and pipelines.
pub(crate) fn env_syntax<'a>(
    file: &'a Path,
    doc: &'a Document,
    base: &'a str,
    vars: &'a std::collections::BTreeMap<String, String>,
) -> impl Iterator<Item = Diagnostic> + 'a {
    vars.iter().filter_map(move |(name, value)| {
        let error = env_expand::check(value).err()?;
        let pointer = pointer_push(base, name);
        Some(
            Diagnostic::error(
                Code::InvalidValue,
                file,
                format!("`{name}` has a malformed host variable: {}", error.message),
            )
            .at(doc.value_span(&pointer))
            .label("malformed `${...}`")
            .hint("write `${NAME}` or `${NAME:-default}`"),
        )
    })
}

fn required_files(dir: &Path, task: &TaskManifest) -> Vec<Diagnostic> {
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut out = Vec::new();
    let mut need = |relative: &str, hint: String| {
        if !dir.join(relative).is_file() {
            out.push(
                Diagnostic::error(
                    Code::MissingFile,
                    dir.join(relative),
                    format!("task `{name}` has no `{relative}`"),
                )
                .hint(hint),
            );
        }
    };
    let test_hint =
        "add the verifier script; it writes the reward to /logs/verifier/reward.txt".to_string();
    // Windows tasks' scripts are batch files (refused at run time, valid all the same).
    let script = match task.environment.os {
        Some(super::task::Os::Windows) => "test.bat",
        _ => "test.sh",
    };
    let root_tests = format!("tests/{script}");
    // A separate verifier (Harbor's) runs the tests its own image holds.
    let shared = |verifier: &super::task::VerifierSection| {
        verifier.harbor_mode() != Some(crate::verify::Isolation::Separate)
    };
    if task.steps.is_empty() {
        need(
            "instruction.md",
            "write the instructions the agent receives in this file".to_string(),
        );
        if shared(&task.verifier) {
            need(&root_tests, test_hint);
        }
    } else {
        for step in &task.steps {
            need(
                &format!("steps/{}/instruction.md", step.name),
                format!(
                    "each step has a directory `steps/{}/` with the instructions of its agent",
                    step.name
                ),
            );
            let step_shared = match step.verifier.harbor_mode() {
                Some(mode) => mode == crate::verify::Isolation::Shared,
                None => shared(&task.verifier),
            };
            let own = format!("steps/{}/tests/{script}", step.name);
            if step_shared && !dir.join(&own).is_file() {
                need(
                    &root_tests,
                    format!(
                        "step `{}` has no `{own}`, so the task's tests run: {test_hint}",
                        step.name
                    ),
                );
            }
        }
    }
    if task.environment.docker_image.is_none() && super::task_support::compose_file(dir).is_none() {
        need(
            "environment/Dockerfile",
            "add a Dockerfile, or name a prebuilt image with `[environment] docker_image`"
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::{Code, Severity};
    use crate::manifest::validate_paths;

    /// A task directory with `task.toml` and the files a task of one step needs.
    fn task(toml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("task.toml", toml);
        write("instruction.md", "Do it.\n");
        write("environment/Dockerfile", "FROM debian:bookworm-slim\n");
        write("tests/test.sh", "echo 1 > /logs/verifier/reward.txt\n");
        dir
    }

    fn problems(dir: &tempfile::TempDir) -> Vec<(Severity, Code, String)> {
        validate_paths(&[dir.path().to_path_buf()])
            .report
            .diagnostics
            .into_iter()
            .map(|d| (d.severity, d.code, d.message))
            .collect()
    }

    #[test]
    fn every_table_of_harbor_1_4_loads() {
        let dir = task(
            r#"schema_version = "1.4"
source = "benchmark"
multi_step_reward_strategy = "mean"
artifacts = ["/app/a.txt", { source = "/app/logs", destination = "logs", exclude = ["*.tmp"] }]

[task]
name = "acme/task-1"
version = "1.0.0"
description = "A task"
authors = [{ name = "A", email = "a@example.com" }]
keywords = ["k"]

[agent]
timeout_sec = 10
user = "agent"

[verifier]
timeout_sec = 10
user = 1000
env = { A = "b" }

[[verifier.collect]]
command = "true"
timeout_sec = 5

[environment]
cpus = 1
memory = "1G"
storage = "2G"
mcp_servers = []
gpus = 0
gpu_types = []

[environment.healthcheck]
command = "true"
start_interval_sec = 1
"#,
        );
        assert_eq!(problems(&dir), Vec::new());
    }

    #[test]
    fn an_unknown_key_of_a_newer_format_is_a_warning_and_a_typo_an_error() {
        let dir = task("schema_version = \"1.5\"\nbrand_new = 1\n[agent]\ntimeout_secs = 3\n");
        let found = problems(&dir);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().any(|(s, c, m)| *s == Severity::Warning
            && *c == Code::UnknownKey
            && m.contains("`brand_new`")));
        assert!(found.iter().any(|(s, c, m)| *s == Severity::Error
            && *c == Code::UnknownKey
            && m.contains("`timeout_secs`")));
    }

    #[test]
    fn a_package_name_is_org_slash_name() {
        let dir = task("[task]\nname = \"no-org\"\n");
        let found = problems(&dir);
        assert!(
            found
                .iter()
                .any(|(s, _, m)| *s == Severity::Error && m.contains("task.name")),
            "{found:?}"
        );
    }

    #[test]
    fn a_shared_verifier_with_its_own_environment_contradicts_itself() {
        let dir =
            task("[verifier]\nenvironment_mode = \"shared\"\n[verifier.environment]\ncpus = 1\n");
        let found = problems(&dir);
        assert!(
            found.iter().any(|(_, c, _)| *c == Code::Conflict),
            "{found:?}"
        );
    }

    #[test]
    fn deprecated_keys_map_inside_the_verifier_environment_too() {
        let dir = task(
            "[verifier]\nenvironment_mode = \"separate\"\n[verifier.environment]\nmemory = \"2G\"\nallow_internet = false\n",
        );
        let loaded = crate::manifest::load_task(dir.path()).unwrap().value;
        let env = loaded.manifest.verifier.environment.unwrap();
        assert_eq!(env.memory_megabytes(), Some(2048));
        assert_eq!(
            env.resolved_network_mode(),
            crate::manifest::task::NetworkMode::NoNetwork
        );
    }

    #[test]
    fn allowed_hosts_of_a_phase_need_its_allowlist() {
        let dir = task("[agent]\nallowed_hosts = [\"pypi.org\"]\n");
        let found = problems(&dir);
        assert!(
            found.iter().any(|(s, c, m)| *s == Severity::Error
                && *c == Code::Conflict
                && m.contains("agent.allowed_hosts")),
            "{found:?}"
        );
    }

    #[test]
    fn a_multi_step_task_needs_each_steps_instruction_and_no_root_one() {
        let dir = task("[[steps]]\nname = \"one\"\n[[steps]]\nname = \"two\"\n");
        std::fs::remove_file(dir.path().join("instruction.md")).unwrap();
        std::fs::create_dir_all(dir.path().join("steps/one")).unwrap();
        std::fs::write(dir.path().join("steps/one/instruction.md"), "One.\n").unwrap();
        let found = problems(&dir);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].2.contains("steps/two/instruction.md"), "{found:?}");
    }

    #[test]
    fn artifact_destinations_stay_inside_artifacts() {
        let dir = task(
            "artifacts = [{ source = \"/a\", destination = \"../x\" }, { source = \"/b\", destination = \"manifest.json\" }, \"/c/../d\"]\n",
        );
        let found = problems(&dir);
        assert_eq!(
            found
                .iter()
                .filter(|(s, c, _)| *s == Severity::Error && *c == Code::InvalidValue)
                .count(),
            3,
            "{found:?}"
        );
    }

    #[test]
    fn what_helios_cannot_run_is_said_at_validate() {
        let dir = task(
            "[environment]\nos = \"windows\"\n[environment.tpu]\ntype = \"v5\"\ntopology = \"2x2\"\n",
        );
        std::fs::write(
            dir.path().join("environment/docker-compose.yaml"),
            "services: {}\n",
        )
        .unwrap();
        let found = problems(&dir);
        let unsupported: Vec<&String> = found
            .iter()
            .filter(|(s, c, _)| *s == Severity::Warning && *c == Code::Unsupported)
            .map(|(_, _, m)| m)
            .collect();
        // Windows and TPUs; a Compose file is supported now.
        assert_eq!(unsupported.len(), 2, "{found:?}");
    }

    #[test]
    fn a_separate_verifier_that_quietly_gets_a_network_is_warned_about() {
        let dir = task(
            "[environment]\nnetwork_mode = \"no-network\"\n[verifier]\nenvironment_mode = \"separate\"\n[verifier.environment]\ncpus = 1\n",
        );
        let found = problems(&dir);
        assert!(
            found
                .iter()
                .any(|(s, _, m)| *s == Severity::Warning && m.contains("has network access")),
            "{found:?}"
        );
    }

    #[test]
    fn a_network_per_phase_and_allowlisted_phases_run_separate_verifiers_included() {
        let public_then_none = task("[agent]\nnetwork_mode = \"no-network\"\n");
        assert!(
            !problems(&public_then_none)
                .iter()
                .any(|(_, c, _)| *c == Code::Unsupported)
        );
        let allowlisted =
            task("[agent]\nnetwork_mode = \"allowlist\"\nallowed_hosts = [\"pypi.org\"]\n");
        assert_eq!(problems(&allowlisted), Vec::new());
        let separate = task(
            "[verifier]\nenvironment_mode = \"separate\"\n[verifier.environment]\nnetwork_mode = \"allowlist\"\nallowed_hosts = [\"pypi.org\"]\n",
        );
        assert_eq!(problems(&separate), Vec::new());
    }

    #[test]
    fn an_allowed_host_helios_cannot_enforce_is_an_error_at_its_entry() {
        let dir = task(
            "[agent]\nnetwork_mode = \"allowlist\"\nallowed_hosts = [\"pypi.org\", \"https://x.org/a\"]\n",
        );
        let found = problems(&dir);
        assert!(
            found.iter().any(|(s, c, m)| *s == Severity::Error
                && *c == Code::InvalidValue
                && m.contains("https://x.org/a")),
            "{found:?}"
        );
    }

    #[test]
    fn an_allowlist_without_hosts_is_harbors_deny_all_and_only_warned_about() {
        let dir = task("[environment]\nnetwork_mode = \"allowlist\"\n");
        let found = problems(&dir);
        assert!(
            found
                .iter()
                .any(|(s, _, m)| *s == Severity::Warning && m.contains("allows no host")),
            "{found:?}"
        );
        assert!(
            !found.iter().any(|(s, _, _)| *s == Severity::Error),
            "{found:?}"
        );
    }
}
