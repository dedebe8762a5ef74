//! Compose files of task environments (`environment/docker-compose.yaml`, as Harbor's
//! Compose tasks have them): the file is merged over a base whose `main` service is the
//! agent's container, so it may override `main` and add sidecars.
//!
//! [`check`] says, at `helios validate`, which keys helios does not support and where;
//! [`ComposeFile::resolve`] interpolates `${VAR}` references (per trial: the project name
//! differs) and types the services with `docker-compose-types`. Driving the containers is
//! the environment's business (`env`); the runner turns [`Service`]s into its types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docker_compose_types as dct;
use serde_json::Value;

use super::document::{self, Document, Syntax, pointer_push};
use crate::diagnostic::{Code, Diagnostic};

/// The agent's service: the one helios builds from `environment/Dockerfile` (or
/// `docker_image`) and runs the agent and the tests in.
pub const MAIN: &str = "main";

/// The names a task's Compose file may have, in the order they are looked for.
pub const FILE_NAMES: [&str; 4] = [
    "docker-compose.yaml",
    "docker-compose.yml",
    "compose.yaml",
    "compose.yml",
];

/// The Compose file of a task directory's environment, if it has one.
pub fn find(task_dir: &Path) -> Option<PathBuf> {
    FILE_NAMES
        .iter()
        .map(|name| task_dir.join("environment").join(name))
        .find(|path| path.is_file())
}

/// How a service key is treated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Support {
    Honoured,
    /// Accepted and not applied; `validate` says so.
    Ignored(&'static str),
}

/// The service keys helios knows; any other is refused with its place.
const SERVICE_KEYS: &[(&str, Support)] = &[
    ("build", Support::Honoured),
    ("image", Support::Honoured),
    ("command", Support::Honoured),
    ("entrypoint", Support::Honoured),
    ("environment", Support::Honoured),
    ("env_file", Support::Honoured),
    ("healthcheck", Support::Honoured),
    ("depends_on", Support::Honoured),
    ("working_dir", Support::Honoured),
    ("volumes", Support::Honoured),
    ("tmpfs", Support::Honoured),
    ("networks", Support::Honoured),
    ("cpus", Support::Honoured),
    ("mem_limit", Support::Honoured),
    ("deploy", Support::Honoured),
    ("init", Support::Honoured),
    ("user", Support::Honoured),
    ("hostname", Support::Honoured),
    ("labels", Support::Honoured),
    (
        "ports",
        Support::Ignored(
            "`ports` are not published on this machine: services reach each other by name on \
             the trial's network",
        ),
    ),
    (
        "expose",
        Support::Ignored("`expose` is not needed: every port is open on the trial's network"),
    ),
    (
        "restart",
        Support::Ignored("`restart` is ignored: a service lives as long as its trial"),
    ),
    (
        "stop_grace_period",
        Support::Ignored("`stop_grace_period` is ignored: services are removed at once"),
    ),
    ("stdin_open", Support::Ignored("`stdin_open` is ignored")),
    ("tty", Support::Ignored("`tty` is ignored")),
    (
        "platform",
        Support::Ignored("`platform` is ignored: images are built for this machine"),
    ),
];

const TOP_KEYS: &[&str] = &["services", "version", "name", "networks", "volumes"];

/// A service as the runner needs it: interpolated, typed, its defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub build: Option<Build>,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    pub depends_on: Vec<(String, Condition)>,
    pub tmpfs: Vec<String>,
    /// Anonymous volumes: paths in the container, gone with it.
    pub volumes: Vec<String>,
    pub cpus: Option<f64>,
    pub memory_mb: Option<u64>,
    pub init: bool,
    pub labels: BTreeMap<String, String>,
    /// Networks that already exist (`external: true`) it joins besides the trial's, by
    /// their names on the engine.
    pub networks: Vec<String>,
    /// Named volumes (the file's) and bind mounts (absolute sources), in order.
    pub mounts: Vec<VolumeEntry>,
}

/// A service's image build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The build context, an absolute path (relative ones are to `environment/`).
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
}

/// When a service that depends on another may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

/// A Compose healthcheck: the engine's own description of one, as the file says it.
pub type Healthcheck = crate::env::HealthSpec;

/// A problem with a Compose file, at a JSON Pointer into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeProblem {
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for ComposeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", dotted(&self.pointer), self.message)
        }
    }
}

fn dotted(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// A task's Compose file, read: its data before interpolation.
#[derive(Debug, Clone)]
pub struct ComposeFile {
    pub path: PathBuf,
    value: Value,
}

impl ComposeFile {
    /// What of the file helios cannot run yet (a task with any is refused by `apply`).
    pub fn refused(&self) -> Vec<String> {
        unsupported(&self.value, None)
            .into_iter()
            .filter(|(_, _, severity)| *severity == Severity::Error)
            .map(|(_, message, _)| message)
            .collect()
    }

    /// Reads and parses the Compose file of `task_dir`, if it has one.
    pub fn read(task_dir: &Path) -> Result<Option<ComposeFile>, String> {
        let Some(path) = find(task_dir) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let doc = document::parse(Syntax::Yaml, &path, &text).map_err(|errors| {
            let first = errors
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default();
            format!("`{}` is not valid YAML: {first}", path.display())
        })?;
        Ok(Some(ComposeFile {
            path,
            value: doc.value,
        }))
    }

    /// The names of its services, as written.
    /// The named volumes it declares (made per trial).
    pub fn volume_names(&self) -> Vec<String> {
        declared_volumes(&self.value)
    }

    pub fn service_names(&self) -> Vec<String> {
        self.value
            .get("services")
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The directory relative paths of the file are taken from (`environment/`).
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The services, interpolated with `lookup` (a variable it does not know is empty, as
    /// Compose has it), `main` first when the file names it.
    pub fn resolve(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Service>, Vec<ComposeProblem>> {
        let mut problems = Vec::new();
        let mut value = self.value.clone();
        interpolate_value(&mut value, "", lookup, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let artifacts = lookup("HOST_ARTIFACTS_PATH");
        problems.extend(
            unsupported(&value, artifacts.as_deref())
                .into_iter()
                .filter_map(|(p, m, s)| {
                    (s == Severity::Error).then_some(ComposeProblem {
                        pointer: p,
                        message: m,
                    })
                }),
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut services = Vec::new();
        let Some(map) = value.get("services").and_then(Value::as_object) else {
            return Ok(services);
        };
        let externals = external_networks(&value);
        let artifacts = lookup("HOST_ARTIFACTS_PATH");
        for (name, body) in map {
            let pointer = pointer_push("/services", name);
            match service(
                name,
                body,
                self.dir(),
                &pointer,
                &externals,
                artifacts.as_deref(),
            ) {
                Ok(s) => services.push(s),
                Err(mut found) => problems.append(&mut found),
            }
        }
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        for s in &services {
            for (dependency, _) in &s.depends_on {
                if dependency != MAIN && !names.contains(&dependency.as_str()) {
                    problems.push(ComposeProblem {
                        pointer: format!("{}/depends_on", pointer_push("/services", &s.name)),
                        message: format!("service `{dependency}` is not defined"),
                    });
                }
            }
        }
        if let Some(cycle) = dependency_cycle(&services) {
            problems.push(ComposeProblem {
                pointer: pointer_push("/services", &cycle),
                message: format!("`depends_on` of `{cycle}` runs in a cycle"),
            });
        }
        if problems.is_empty() {
            services.sort_by_key(|s| s.name != MAIN);
            Ok(services)
        } else {
            Err(problems)
        }
    }
}

/// A service of a dependency cycle, if there is one.
fn dependency_cycle(services: &[Service]) -> Option<String> {
    let deps: BTreeMap<&str, Vec<&str>> = services
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on.iter().map(|(d, _)| d.as_str()).collect(),
            )
        })
        .collect();
    fn visit<'a>(
        name: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) -> Option<String> {
        if path.contains(&name) {
            return Some(name.to_string());
        }
        if !done.insert(name) {
            return None;
        }
        path.push(name);
        for next in deps.get(name).into_iter().flatten() {
            if let Some(found) = visit(next, deps, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for name in deps.keys() {
        if let Some(found) = visit(name, &deps, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Error,
    Warning,
}

/// What helios does not support in a (parsed) Compose file: the key's pointer, why, and
/// whether it is refused or ignored.
fn unsupported(value: &Value, artifacts: Option<&str>) -> Vec<(String, String, Severity)> {
    let mut out = Vec::new();
    let externals = external_networks(value);
    let declared = declared_volumes(value);
    let refuse = |out: &mut Vec<_>, pointer: String, message: String| {
        out.push((pointer, message, Severity::Error));
    };
    let Some(top) = value.as_object() else {
        refuse(
            &mut out,
            String::new(),
            "a Compose file is a mapping".into(),
        );
        return out;
    };
    for (key, body) in top {
        let pointer = pointer_push("", key);
        if key.starts_with("x-") {
            continue;
        }
        if !TOP_KEYS.contains(&key.as_str()) {
            refuse(
                &mut out,
                pointer,
                format!("the top-level key `{key}` is not supported by helios"),
            );
            continue;
        }
        match key.as_str() {
            "networks" => {
                for (name, network) in body.as_object().into_iter().flatten() {
                    if name != "default" && !is_external(network) {
                        refuse(
                            &mut out,
                            pointer_push(&pointer, name),
                            format!(
                                "network `{name}`: helios puts every service on one network \
                                 of the trial (`default`), and joins networks that already \
                                 exist (`external: true`); it does not make others"
                            ),
                        );
                    }
                }
            }
            "volumes" => {
                for (name, volume) in body.as_object().into_iter().flatten() {
                    let keys: Vec<&String> = volume
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k)
                        .collect();
                    if !keys.is_empty() {
                        refuse(
                            &mut out,
                            pointer_push(&pointer, name),
                            format!(
                                "named volume `{name}`: helios makes each named volume per \
                                 trial, empty, with the engine's default driver; {} not \
                                 supported",
                                keys.iter()
                                    .map(|k| format!("`{k}` is"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    let services = top.get("services").and_then(Value::as_object);
    for (name, body) in services.into_iter().flatten() {
        let base = pointer_push("/services", name);
        let Some(body) = body.as_object() else {
            continue;
        };
        for (key, field) in body {
            let pointer = pointer_push(&base, key);
            if key.starts_with("x-") {
                continue;
            }
            match SERVICE_KEYS.iter().find(|(k, _)| k == key) {
                None => refuse(
                    &mut out,
                    pointer,
                    format!(
                        "`{key}` (of service `{name}`) is not supported by helios; it supports {}",
                        SERVICE_KEYS
                            .iter()
                            .map(|(k, _)| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some((_, Support::Ignored(why))) => {
                    out.push((pointer, why.to_string(), Severity::Warning))
                }
                Some((_, Support::Honoured)) => {
                    let known = Known {
                        externals: &externals,
                        volumes: &declared,
                        artifacts,
                    };
                    service_key(name, key, field, &pointer, &known, &mut out);
                }
            }
        }
    }
    out
}

/// One entry of a service's `volumes`, short (`SOURCE:TARGET[:ro]`) or long syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeEntry {
    /// `- /path`: an anonymous volume, gone with its container.
    Anonymous(String),
    /// A named volume of the file's top-level `volumes`: one per trial.
    Named {
        volume: String,
        target: String,
        read_only: bool,
    },
    /// A path of this machine: relative ones are to `environment/`.
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
}

/// Reads one `volumes` entry; why helios cannot mount it otherwise.
fn volume_entry(value: &Value) -> Result<VolumeEntry, String> {
    let (kind, source, target, read_only) = match value {
        Value::String(text) => {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [target] => return Ok(VolumeEntry::Anonymous(target.to_string())),
                [source, target, rest @ ..] if rest.len() <= 1 => {
                    let read_only = rest
                        .first()
                        .is_some_and(|mode| mode.split(',').any(|m| m == "ro"));
                    let bind = source.starts_with(['/', '.', '~', '$']);
                    (
                        if bind { "bind" } else { "volume" },
                        source.to_string(),
                        target.to_string(),
                        read_only,
                    )
                }
                _ => return Err(format!("`{text}` is not `SOURCE:TARGET[:MODE]`")),
            }
        }
        Value::Object(o) => {
            let text = |key: &str| o.get(key).and_then(Value::as_str).map(str::to_string);
            let Some(target) = text("target") else {
                return Err("a volume needs its `target`".into());
            };
            let read_only = o.get("read_only").and_then(Value::as_bool) == Some(true);
            let kind = o.get("type").and_then(Value::as_str);
            match (kind, text("source")) {
                (Some("volume"), None) => return Ok(VolumeEntry::Anonymous(target)),
                (Some(kind @ ("volume" | "bind")), Some(source)) => {
                    (kind, source, target, read_only)
                }
                (kind, _) => {
                    return Err(format!(
                        "a `{}` mount is not supported: helios mounts volumes and binds",
                        kind.unwrap_or("?")
                    ));
                }
            }
        }
        _ => return Err("a volume is a string or a mapping".into()),
    };
    Ok(if kind == "bind" {
        VolumeEntry::Bind {
            source,
            target,
            read_only,
        }
    } else {
        VolumeEntry::Named {
            volume: source,
            target,
            read_only,
        }
    })
}

/// The named volumes the file declares at the top level.
fn declared_volumes(value: &Value) -> Vec<String> {
    value
        .get("volumes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether a top-level network is one that already exists (`external: true`, or the
/// older `external: {name: …}`).
fn is_external(network: &Value) -> bool {
    match network.get("external") {
        Some(Value::Bool(external)) => *external,
        Some(Value::Object(_)) => true,
        _ => false,
    }
}

/// The top-level networks that already exist: their key in the file → their name on the
/// engine (`name:`, the older `external.name`, or the key).
fn external_networks(value: &Value) -> BTreeMap<String, String> {
    value
        .get("networks")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, network)| is_external(network))
        .map(|(key, network)| {
            let name = network
                .get("name")
                .or_else(|| network.get("external").and_then(|e| e.get("name")))
                .and_then(Value::as_str)
                .unwrap_or(key);
            (key.clone(), name.to_string())
        })
        .collect()
}

/// The networks a service's `networks` names (a list, or a mapping by name).
fn network_names(field: &Value) -> Vec<String> {
    match field {
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Value::Object(o) => o.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// What the rest of the file says, for checking one service's keys.
struct Known<'a> {
    /// The top-level networks that already exist, by key.
    externals: &'a BTreeMap<String, String>,
    /// The top-level named volumes.
    volumes: &'a [String],
    /// `HOST_ARTIFACTS_PATH` once interpolated; `None` in the file as written.
    artifacts: Option<&'a str>,
}

/// Whether helios mounts a bind of `source` (as written, or interpolated with `artifacts`):
/// the trial's artifacts directory, or a path inside `environment/`.
fn bind_allowed(source: &str, artifacts: Option<&str>) -> bool {
    let path = Path::new(source);
    ["${HOST_ARTIFACTS_PATH}", "$HOST_ARTIFACTS_PATH"]
        .iter()
        .any(|v| source.starts_with(v))
        || artifacts.is_some_and(|a| path.starts_with(a))
        || (path.is_relative()
            && !source.starts_with(['~', '$'])
            && !path
                .components()
                .any(|c| c == std::path::Component::ParentDir))
}

fn bind_refusal(source: &str) -> String {
    format!(
        "bind mount of `{source}`: helios mounts only `${{HOST_ARTIFACTS_PATH}}` (the trial's \
         artifacts on this machine) and paths inside `environment/` (read-only)"
    )
}

/// What of a supported service key's value helios does not support.
fn service_key(
    service: &str,
    key: &str,
    field: &Value,
    pointer: &str,
    known: &Known<'_>,
    out: &mut Vec<(String, String, Severity)>,
) {
    let mut refuse =
        |pointer: String, message: String| out.push((pointer, message, Severity::Error));
    match key {
        "build" if service == MAIN => {
            let context = match field {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o.get("context").and_then(Value::as_str),
                _ => None,
            };
            let dockerfile = field.get("dockerfile").and_then(Value::as_str);
            if !matches!(context, Some("." | "./")) || dockerfile.is_some_and(|d| d != "Dockerfile")
            {
                refuse(
                    pointer.to_string(),
                    "`main` is built from `environment/Dockerfile` (or is `docker_image`): its \
                     `build` can only be `.`"
                        .into(),
                );
            }
        }
        "image" if service == MAIN => refuse(
            pointer.to_string(),
            "`main` is built from `environment/Dockerfile` (or is `docker_image`): set \
             `docker_image` in task.toml instead of `image`"
                .into(),
        ),
        "build" => {
            if let Some(o) = field.as_object() {
                for k in o.keys() {
                    if !["context", "dockerfile"].contains(&k.as_str()) {
                        refuse(
                            pointer_push(pointer, k),
                            format!(
                                "`build.{k}` is not supported: only `context` and `dockerfile`"
                            ),
                        );
                    }
                }
            }
        }
        "networks" => {
            for network in network_names(field)
                .iter()
                .filter(|n| *n != "default" && !known.externals.contains_key(*n))
            {
                refuse(
                    pointer.to_string(),
                    format!(
                        "network `{network}`: helios puts every service on one network of the \
                         trial (`default`), and joins networks declared `external: true` at the \
                         top level"
                    ),
                );
            }
        }
        "volumes" => {
            for (i, volume) in field.as_array().into_iter().flatten().enumerate() {
                match volume_entry(volume) {
                    Err(why) => refuse(pointer_push(pointer, &i.to_string()), why),
                    Ok(VolumeEntry::Named { volume, .. }) if !known.volumes.contains(&volume) => {
                        refuse(
                            pointer_push(pointer, &i.to_string()),
                            format!(
                                "volume `{volume}` is not declared under the top-level \
                                 `volumes`"
                            ),
                        )
                    }
                    Ok(VolumeEntry::Bind { source, .. })
                        if !bind_allowed(&source, known.artifacts) =>
                    {
                        refuse(pointer_push(pointer, &i.to_string()), bind_refusal(&source))
                    }
                    Ok(_) => {}
                }
            }
        }
        "deploy" => {
            for (k, v) in field.as_object().into_iter().flatten() {
                let at = pointer_push(pointer, k);
                if k != "resources" {
                    refuse(
                        at,
                        format!("`deploy.{k}` is not supported: only `deploy.resources`"),
                    );
                    continue;
                }
                for (k, v) in v.as_object().into_iter().flatten() {
                    let at = pointer_push(&at, k);
                    if k == "reservations" {
                        continue;
                    }
                    if k != "limits" {
                        refuse(at, format!("`deploy.resources.{k}` is not supported"));
                        continue;
                    }
                    for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
                        if k != "cpus" && k != "memory" {
                            refuse(
                                pointer_push(&at, k),
                                format!(
                                    "`deploy.resources.limits.{k}` is not supported: only \
                                     `cpus` and `memory`"
                                ),
                            );
                        }
                    }
                }
            }
        }
        "depends_on" => {
            for (dep, v) in field.as_object().into_iter().flatten() {
                let condition = v.get("condition").and_then(Value::as_str);
                if let Some(c) = condition
                    && condition_of(c).is_none()
                {
                    refuse(
                        pointer_push(&pointer_push(pointer, dep), "condition"),
                        format!(
                            "condition `{c}` is not one of `service_started`, `service_healthy`, \
                             `service_completed_successfully`"
                        ),
                    );
                }
            }
        }
        _ => {}
    }
}

fn condition_of(text: &str) -> Option<Condition> {
    match text {
        "service_started" => Some(Condition::Started),
        "service_healthy" => Some(Condition::Healthy),
        "service_completed_successfully" => Some(Condition::CompletedSuccessfully),
        _ => None,
    }
}

/// Diagnostics for the Compose file `doc` (read from `path`): keys helios refuses and keys
/// it ignores are warnings at their place (the task is valid, as Harbor's loader has it;
/// `apply` refuses a task with a refused key, see `task_support`); then the file is resolved
/// once (with the host's variables and a sample project name) so that what only typing
/// finds is said too.
pub fn check(path: &Path, doc: &Document) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut syntax = Vec::new();
    check_syntax(&doc.value, "", &mut syntax);
    for problem in syntax {
        out.push(
            Diagnostic::error(Code::InvalidValue, path, problem.message)
                .at(doc.value_span(&problem.pointer)),
        );
    }
    let found = unsupported(&doc.value, None);
    let refused = found.iter().any(|(_, _, s)| *s == Severity::Error);
    for (pointer, message, severity) in found {
        let d = match severity {
            Severity::Error => Diagnostic::warning(Code::Unsupported, path, message)
                .hint("`apply` refuses trials of this task until helios supports it"),
            Severity::Warning => Diagnostic::warning(Code::Unsupported, path, message),
        };
        out.push(d.at(doc.key_span(&pointer)));
    }
    let syntax_failed = out
        .iter()
        .any(|d| d.severity == crate::diagnostic::Severity::Error);
    if refused || syntax_failed {
        return out;
    }
    let file = ComposeFile {
        path: path.to_path_buf(),
        value: doc.value.clone(),
    };
    let sample = Variables::sample();
    if let Err(problems) = file.resolve(&|name| sample.lookup(name, &|n| std::env::var(n).ok())) {
        for problem in problems {
            out.push(
                Diagnostic::error(Code::InvalidValue, path, problem.message)
                    .at(doc.value_span(&problem.pointer)),
            );
        }
    }
    out
}

/// The variables helios gives a Compose file besides the host's.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    /// `COMPOSE_PROJECT_NAME`: one per trial.
    pub project: String,
    /// `HOST_ARTIFACTS_PATH`: the trial's `artifacts/` on this machine.
    pub host_artifacts: String,
    /// `CPUS` and `MEMORY` (`2048M`): the task's `[environment]` limits, when set.
    pub cpus: Option<f64>,
    pub memory_mb: Option<u64>,
}

/// Where Harbor's Compose files find the agent's, the verifier's and the artifacts'
/// directories inside `main`.
const ENV_ARTIFACTS_PATH: &str = "/logs/artifacts";
const ENV_AGENT_LOGS_PATH: &str = "/logs/agent";
const ENV_VERIFIER_LOGS_PATH: &str = "/logs/verifier";

impl Variables {
    fn sample() -> Variables {
        Variables {
            project: "helios-validate".into(),
            host_artifacts: "/tmp/helios-validate/artifacts".into(),
            cpus: None,
            memory_mb: None,
        }
    }

    /// `name`'s value: helios's own, else the host's.
    pub fn lookup(&self, name: &str, host: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        match name {
            "COMPOSE_PROJECT_NAME" => Some(self.project.clone()),
            "HOST_ARTIFACTS_PATH" => Some(self.host_artifacts.clone()),
            "ENV_ARTIFACTS_PATH" => Some(ENV_ARTIFACTS_PATH.into()),
            "ENV_AGENT_LOGS_PATH" => Some(ENV_AGENT_LOGS_PATH.into()),
            "ENV_VERIFIER_LOGS_PATH" => Some(ENV_VERIFIER_LOGS_PATH.into()),
            "CPUS" if self.cpus.is_some() => self.cpus.map(|c| c.to_string()),
            "MEMORY" if self.memory_mb.is_some() => self.memory_mb.map(|m| format!("{m}M")),
            _ => host(name),
        }
    }
}

/// Syntax errors of `${...}` references in every string of `value`.
fn check_syntax(value: &Value, pointer: &str, out: &mut Vec<ComposeProblem>) {
    match value {
        Value::String(s) => {
            if let Err(message) = interpolate(s, &|_| None) {
                out.push(ComposeProblem {
                    pointer: pointer.to_string(),
                    message,
                });
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check_syntax(v, &pointer_push(pointer, &i.to_string()), out);
            }
        }
        Value::Object(o) => {
            for (k, v) in o {
                check_syntax(v, &pointer_push(pointer, k), out);
            }
        }
        _ => {}
    }
}

fn interpolate_value(
    value: &mut Value,
    pointer: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<ComposeProblem>,
) {
    match value {
        Value::String(s) => match interpolate(s, lookup) {
            Ok(v) => *s = v,
            Err(message) => problems.push(ComposeProblem {
                pointer: pointer.to_string(),
                message,
            }),
        },
        Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                interpolate_value(v, &pointer_push(pointer, &i.to_string()), lookup, problems);
            }
        }
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                interpolate_value(v, &pointer_push(pointer, k), lookup, problems);
            }
        }
        _ => {}
    }
}

/// Compose's interpolation: `$$` is a `$`; `$VAR` and `${VAR}` a variable (empty when
/// unset); `${VAR:-default}` / `${VAR-default}` a default when unset (or empty, with `:`);
/// `${VAR:?message}` / `${VAR?message}` an error when unset (or empty).
pub fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            // The closing brace of this reference, past those of nested defaults.
            let mut depth = 0usize;
            let mut close = None;
            let bytes = braced.as_bytes();
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
                    b'}' if depth == 0 => {
                        close = Some(i);
                        break;
                    }
                    b'}' => depth -= 1,
                    _ => {}
                }
            }
            let close = close.ok_or_else(|| format!("`${{` has no closing `}}` in `{text}`"))?;
            let inner = &braced[..close];
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, modifier) = inner.split_at(name_end);
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("`${{{inner}}}` does not name a variable"));
            }
            let value = lookup(name);
            let unset_or_empty = value.as_deref().is_none_or(str::is_empty);
            let resolved = match modifier {
                "" => value.unwrap_or_default(),
                m if m.starts_with(":-") => {
                    if unset_or_empty {
                        interpolate(&m[2..], lookup)?
                    } else {
                        value.unwrap_or_default()
                    }
                }
                m if m.starts_with('-') => match value {
                    Some(v) => v,
                    None => interpolate(&m[1..], lookup)?,
                },
                m if m.starts_with(":?") || m.starts_with('?') => {
                    let (message, fails) = match m.strip_prefix(":?") {
                        Some(message) => (message, unset_or_empty),
                        None => (&m[1..], value.is_none()),
                    };
                    if fails {
                        return Err(format!("`{name}` is required: {message}"));
                    }
                    value.unwrap_or_default()
                }
                m => return Err(format!("`${{{name}{m}}}`: `{m}` is not a Compose modifier")),
            };
            out.push_str(&resolved);
            rest = &braced[close + 1..];
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                out.push('$');
                rest = after;
            } else {
                out.push_str(&lookup(name).unwrap_or_default());
                rest = &after[end..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One service, typed by `docker-compose-types` (after the keys it types differently
/// from Compose, `cpus` and numbers where it wants strings, are taken out).
fn service(
    name: &str,
    body: &Value,
    dir: &Path,
    pointer: &str,
    externals: &BTreeMap<String, String>,
    artifacts: Option<&str>,
) -> Result<Service, Vec<ComposeProblem>> {
    let problem = |at: &str, message: String| ComposeProblem {
        pointer: if at.is_empty() {
            pointer.to_string()
        } else {
            pointer_push(pointer, at)
        },
        message,
    };
    let raw_volumes: Vec<Value> = body
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let networks: Vec<String> = body
        .get("networks")
        .map(network_names)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| externals.get(n).cloned())
        .collect();
    let mut body = match body {
        Value::Null => serde_json::Map::new(),
        Value::Object(o) => o.clone(),
        _ => return Err(vec![problem("", "a service is a mapping".into())]),
    };
    let mut problems = Vec::new();
    let number = |v: Option<Value>| -> Option<String> {
        v.map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
    };
    let cpus_text = number(body.remove("cpus"));
    let mem_text = number(body.remove("mem_limit"));
    let mut limit_cpus = None;
    let mut limit_memory = None;
    if let Some(limits) = body
        .get_mut("deploy")
        .and_then(|d| d.get_mut("resources"))
        .and_then(|r| r.as_object_mut())
    {
        // Reservations are not limits: nothing of them is applied.
        limits.remove("reservations");
        if let Some(l) = limits.get_mut("limits").and_then(Value::as_object_mut) {
            limit_cpus = number(l.remove("cpus"));
            limit_memory = number(l.remove("memory"));
        }
    }
    body.retain(|k, _| !k.starts_with("x-"));
    for (key, support) in SERVICE_KEYS {
        if let Support::Ignored(_) = support {
            body.remove(*key);
        }
    }
    let typed: dct::Service = match serde_json::from_value(Value::Object(body)) {
        Ok(s) => s,
        Err(e) => return Err(vec![problem("", format!("service `{name}`: {e}"))]),
    };
    let cpus = match cpus_text.or(limit_cpus) {
        None => None,
        Some(text) => match text.trim().parse::<f64>() {
            Ok(c) if c > 0.0 => Some(c),
            _ => {
                problems.push(problem("cpus", format!("`{text}` is not a number of CPUs")));
                None
            }
        },
    };
    let memory_mb = match mem_text.or(limit_memory) {
        None => None,
        Some(text) => match compose_bytes(&text) {
            Some(bytes) => Some(bytes.div_ceil(1024 * 1024)),
            None => {
                problems.push(problem(
                    "mem_limit",
                    format!("`{text}` is not a size (write `512m`, `2g`, or bytes)"),
                ));
                None
            }
        },
    };
    let build = match typed.build_ {
        None => None,
        Some(_) if name == MAIN => None,
        Some(dct::BuildStep::Simple(context)) => Some(Build {
            context: dir.join(context),
            dockerfile: "Dockerfile".into(),
        }),
        Some(dct::BuildStep::Advanced(step)) => Some(Build {
            context: dir.join(&step.context),
            dockerfile: step.dockerfile.unwrap_or_else(|| "Dockerfile".into()),
        }),
    };
    if name != MAIN && build.is_none() && typed.image.is_none() {
        problems.push(problem(
            "",
            format!("service `{name}` has neither `build` nor `image`"),
        ));
    }
    // Compose splits a string `command` into words as a shell would, without running one.
    let words = |text: String| shlex::split(&text).unwrap_or_else(|| vec![text]);
    let command = typed.command.map(|c| match c {
        dct::Command::Simple(s) => words(s),
        dct::Command::Args(a) => a,
    });
    let entrypoint = typed.entrypoint.map(|e| match e {
        dct::Entrypoint::Simple(s) => words(s),
        dct::Entrypoint::List(l) => l,
    });
    let mut environment = BTreeMap::new();
    if let Some(files) = &typed.env_file {
        let files: Vec<String> = match files {
            dct::StringOrList::Simple(s) => vec![s.clone()],
            dct::StringOrList::List(l) => l.clone(),
        };
        for file in files {
            let path = dir.join(&file);
            match std::fs::read_to_string(&path) {
                Ok(text) => environment.extend(env_file(&text)),
                Err(e) => problems.push(problem(
                    "env_file",
                    format!("cannot read `{}`: {e}", path.display()),
                )),
            }
        }
    }
    match typed.environment {
        dct::Environment::List(list) => {
            for entry in list {
                match entry.split_once('=') {
                    Some((k, v)) => environment.insert(k.to_string(), v.to_string()),
                    // `- NAME` alone passes the host's value, which helios does not: the
                    // trial would depend on this machine.
                    None => environment.insert(entry.clone(), String::new()),
                };
            }
        }
        dct::Environment::KvPair(map) => {
            for (k, v) in map {
                environment.insert(k, v.map(|v| v.to_string()).unwrap_or_default());
            }
        }
    }
    let healthcheck = match typed.healthcheck {
        None => None,
        Some(h) if h.disable => Some(Healthcheck {
            test: vec!["NONE".into()],
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
            start_interval: None,
        }),
        Some(h) => {
            let mut duration = |key: &str, text: Option<String>| {
                text.and_then(|t| match compose_duration(&t) {
                    Some(d) => Some(d),
                    None => {
                        problems.push(problem(
                            &format!("healthcheck/{key}"),
                            format!("`{t}` is not a duration (write `1s`, `500ms`, `1m30s`)"),
                        ));
                        None
                    }
                })
            };
            let interval = duration("interval", h.interval);
            let timeout = duration("timeout", h.timeout);
            let start_period = duration("start_period", h.start_period);
            let start_interval = duration("start_interval", h.start_interval);
            let test = match h.test {
                None => Vec::new(),
                Some(dct::HealthcheckTest::Single(s)) => vec!["CMD-SHELL".into(), s],
                Some(dct::HealthcheckTest::Multiple(v)) => v,
            };
            if test.is_empty() {
                problems.push(problem(
                    "healthcheck",
                    "a healthcheck needs a `test`".into(),
                ));
            }
            Some(Healthcheck {
                test,
                interval,
                timeout,
                retries: (h.retries > 0).then_some(h.retries as u32),
                start_period,
                start_interval,
            })
        }
    };
    let depends_on = match typed.depends_on {
        dct::DependsOnOptions::Simple(names) => {
            names.into_iter().map(|n| (n, Condition::Started)).collect()
        }
        dct::DependsOnOptions::Conditional(map) => map
            .into_iter()
            .map(|(n, c)| (n, condition_of(&c.condition).unwrap_or(Condition::Started)))
            .collect(),
    };
    let tmpfs = match typed.tmpfs {
        None => Vec::new(),
        Some(dct::Tmpfs::Simple(s)) => vec![s],
        Some(dct::Tmpfs::List(l)) => l,
    };
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    for (i, raw) in raw_volumes.iter().enumerate() {
        match volume_entry(raw) {
            Ok(VolumeEntry::Anonymous(target)) => volumes.push(target),
            Ok(VolumeEntry::Bind {
                source,
                target,
                read_only,
            }) => match bind_source(&source, dir, artifacts) {
                Ok((source, forced_read_only)) => mounts.push(VolumeEntry::Bind {
                    source,
                    target,
                    read_only: read_only || forced_read_only,
                }),
                Err(why) => problems.push(problem(&format!("volumes/{i}"), why)),
            },
            Ok(named) => mounts.push(named),
            Err(why) => problems.push(problem(&format!("volumes/{i}"), why)),
        }
    }
    let labels = match typed.labels {
        dct::Labels::List(list) => list
            .into_iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l, String::new()),
            })
            .collect(),
        dct::Labels::Map(map) => map.into_iter().collect(),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Service {
        name: name.to_string(),
        build,
        image: typed.image,
        command,
        entrypoint,
        environment,
        working_dir: typed.working_dir,
        user: typed.user,
        hostname: typed.hostname,
        healthcheck,
        depends_on,
        tmpfs,
        volumes,
        cpus,
        memory_mb,
        init: typed.init,
        labels,
        networks,
        mounts,
    })
}

/// Where a bind mount's source is on this machine, and whether helios mounts it read-only:
/// the trial's artifacts directory (`${HOST_ARTIFACTS_PATH}`, or a path in it) as written,
/// a path inside `environment/` always read-only (a trial never changes its task), nothing
/// else.
fn bind_source(
    source: &str,
    dir: &Path,
    artifacts: Option<&str>,
) -> Result<(String, bool), String> {
    if !bind_allowed(source, artifacts) {
        return Err(bind_refusal(source));
    }
    let path = Path::new(source);
    Ok(if path.is_relative() {
        // `./conf` as `conf`: the same directory, said as a user would.
        let inside: PathBuf = path
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        (dir.join(inside).display().to_string(), true)
    } else {
        (source.to_string(), false)
    })
}

/// `KEY=VALUE` lines, as Compose's `env_file` has them (`#` comments, blank lines).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// A Compose size in bytes: a bare number is bytes; `b`, `k`, `m`, `g` (with or without
/// a trailing `b`, any case) are powers of 1024.
fn compose_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(bytes) = text.parse::<u64>() {
        return Some(bytes);
    }
    let lower = text.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (number, factor) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1u64 << 10),
        'm' => (&lower[..lower.len() - 1], 1 << 20),
        'g' => (&lower[..lower.len() - 1], 1 << 30),
        't' => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let number: f64 = number.trim().parse().ok()?;
    (number >= 0.0).then_some((number * factor as f64) as u64)
}

/// A Compose duration: `1s`, `500ms`, `1m30s`, `1h`, `10us`.
fn compose_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "SET" => Some("x".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_follows_compose() {
        assert_eq!(interpolate("a${SET}b", &vars).unwrap(), "axb");
        assert_eq!(interpolate("$SET/$$HOME", &vars).unwrap(), "x/$HOME");
        assert_eq!(interpolate("${NOPE}", &vars).unwrap(), "");
        assert_eq!(interpolate("${NOPE:-d}", &vars).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY:-d}", &vars).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY-d}", &vars).unwrap(), "");
        assert_eq!(interpolate("${NOPE:-${SET}}", &vars).unwrap(), "x");
        assert!(
            interpolate("${NOPE:?say}", &vars)
                .unwrap_err()
                .contains("say")
        );
        assert!(interpolate("${SET", &vars).is_err());
        assert_eq!(interpolate("cost $5", &vars).unwrap(), "cost $5");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(compose_bytes("512m"), Some(512 << 20));
        assert_eq!(compose_bytes("1G"), Some(1 << 30));
        assert_eq!(compose_bytes("1gb"), Some(1 << 30));
        assert_eq!(compose_bytes("2048"), Some(2048));
        assert_eq!(compose_bytes("lots"), None);
        assert_eq!(compose_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(compose_duration("500ms"), Some(Duration::from_millis(500)));
    }

    fn file(yaml: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("environment")).unwrap();
        let path = dir.path().join("environment/docker-compose.yaml");
        std::fs::write(&path, yaml).unwrap();
        (dir, path)
    }

    #[test]
    fn services_resolve_with_their_settings() {
        let (dir, _) = file(
            "services:\n  main:\n    environment:\n      MODE: ${MODE:-fast}\n    depends_on:\n      api:\n        condition: service_healthy\n  api:\n    build: ./api\n    command: sh -c 'sleep 2 && serve'\n    cpus: 0.5\n    mem_limit: 256m\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 1s\n    ports: [\"8000:8000\"]\n    x-note: ignored\n",
        );
        let compose = ComposeFile::read(dir.path()).unwrap().unwrap();
        let services = compose.resolve(&|_| None).unwrap();
        assert_eq!(services[0].name, "main");
        assert_eq!(services[0].environment["MODE"], "fast");
        assert_eq!(
            services[0].depends_on,
            vec![("api".to_string(), Condition::Healthy)]
        );
        let api = &services[1];
        assert_eq!(
            api.command.as_deref().unwrap(),
            ["sh", "-c", "sleep 2 && serve"]
        );
        assert_eq!(api.cpus, Some(0.5));
        assert_eq!(api.memory_mb, Some(256));
        assert_eq!(
            api.build.as_ref().unwrap().context,
            compose.dir().join("./api")
        );
        assert_eq!(
            api.healthcheck.as_ref().unwrap().interval,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn deploy_limits_count_as_limits() {
        let (dir, _) = file(
            "services:\n  db:\n    image: postgres\n    deploy:\n      resources:\n        limits:\n          cpus: '2'\n          memory: 1G\n        reservations:\n          cpus: '1'\n",
        );
        let services = ComposeFile::read(dir.path())
            .unwrap()
            .unwrap()
            .resolve(&|_| None)
            .unwrap();
        assert_eq!(services[0].cpus, Some(2.0));
        assert_eq!(services[0].memory_mb, Some(1024));
    }

    #[test]
    fn named_volumes_and_binds_of_the_task_or_its_artifacts_resolve() {
        let (dir, _) = file(
            "services:\n  api:\n    image: nginx\n    volumes:\n      - /cache\n      - shared:/shared:ro\n      - ./conf:/conf\n      - ${HOST_ARTIFACTS_PATH}:/out\nvolumes:\n  shared:\n",
        );
        let file = ComposeFile::read(dir.path()).unwrap().unwrap();
        let services = file
            .resolve(&|name| (name == "HOST_ARTIFACTS_PATH").then(|| "/runs/t/artifacts".into()))
            .unwrap();
        assert_eq!(file.volume_names(), vec!["shared".to_string()]);
        assert_eq!(services[0].volumes, vec!["/cache".to_string()]);
        assert_eq!(
            services[0].mounts,
            vec![
                VolumeEntry::Named {
                    volume: "shared".into(),
                    target: "/shared".into(),
                    read_only: true
                },
                VolumeEntry::Bind {
                    source: dir.path().join("environment/conf").display().to_string(),
                    target: "/conf".into(),
                    read_only: true
                },
                VolumeEntry::Bind {
                    source: "/runs/t/artifacts".into(),
                    target: "/out".into(),
                    read_only: false
                },
            ]
        );
    }

    #[test]
    fn a_volume_not_declared_and_a_bind_outside_the_task_are_refused() {
        for (entry, said) in [
            ("undeclared:/x", "not declared"),
            ("../secrets:/x", "bind mount of `../secrets`"),
            (
                "/var/run/docker.sock:/x",
                "bind mount of `/var/run/docker.sock`",
            ),
        ] {
            let found = unsupported(
                &serde_json::json!({"services": {"api": {"image": "x", "volumes": [entry]}}}),
                None,
            );
            assert!(
                found
                    .iter()
                    .any(|(_, m, s)| *s == Severity::Error && m.contains(said)),
                "{entry}: {found:?}"
            );
        }
    }

    #[test]
    fn unsupported_keys_are_said_at_their_line() {
        let (_dir, path) = file(
            "services:\n  api:\n    image: nginx\n    privileged: true\n    ports: [\"80:80\"]\n    volumes:\n      - /etc:/data\nvolumes:\n  shared: {driver: local}\n",
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = document::parse(Syntax::Yaml, &path, &text).unwrap();
        let found = check(&path, &doc);
        let line =
            |d: &Diagnostic| crate::diagnostic::line_column(&text, d.span.clone().unwrap().start).0;
        let errors: Vec<(usize, &str)> = found
            .iter()
            .filter(|d| d.hint.as_deref().is_some_and(|h| h.contains("refuses")))
            .map(|d| (line(d), d.message.as_str()))
            .collect();
        assert_eq!(errors.len(), 3, "{found:#?}");
        assert!(
            errors
                .iter()
                .any(|(l, m)| *l == 4 && m.contains("`privileged`"))
        );
        assert!(
            errors
                .iter()
                .any(|(l, m)| *l == 7 && m.contains("bind mount of `/etc`"))
        );
        assert!(
            errors
                .iter()
                .any(|(l, m)| *l == 9 && m.contains("`shared`") && m.contains("`driver`"))
        );
        let ignored: Vec<&Diagnostic> = found
            .iter()
            .filter(|d| !d.hint.as_deref().is_some_and(|h| h.contains("refuses")))
            .collect();
        assert_eq!(ignored.len(), 1);
        assert!(ignored[0].message.contains("not published"));
        // The task stays valid, as Harbor's loader has it; `apply` refuses it.
        assert!(
            found
                .iter()
                .all(|d| d.severity == crate::diagnostic::Severity::Warning)
        );
    }

    #[test]
    fn unknown_dependencies_and_cycles_are_refused() {
        let (dir, _) = file(
            "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n  c:\n    image: x\n    depends_on: [d]\n",
        );
        let problems = ComposeFile::read(dir.path())
            .unwrap()
            .unwrap()
            .resolve(&|_| None)
            .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t.contains("`d` is not defined")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("cycle")), "{text:?}");
    }
}
