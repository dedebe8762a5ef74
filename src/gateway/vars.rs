//! The environment variables a trial's agent gets so that the common SDKs and CLIs call the
//! gateway with the trial's token: every one is listed in [`VARIABLES`] and documented in
//! docs/models.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::model::runtime::ModelRuntime;

/// Each variable and what it holds, for the documentation and `helios` itself.
pub const VARIABLES: [(&str, &str); 14] = [
    (
        "ANTHROPIC_BASE_URL",
        "the gateway (Anthropic SDKs, Claude Code)",
    ),
    ("ANTHROPIC_API_KEY", "the trial's token"),
    (
        "OPENAI_BASE_URL",
        "the gateway's `/v1` (OpenAI SDKs, Codex CLI)",
    ),
    ("OPENAI_API_BASE", "the same, for older clients and LiteLLM"),
    ("OPENAI_API_KEY", "the trial's token"),
    (
        "GOOGLE_GEMINI_BASE_URL",
        "the gateway (Gemini CLI, Google Gen AI SDK)",
    ),
    ("GEMINI_API_BASE", "the same, for LiteLLM"),
    ("GEMINI_API_KEY", "the trial's token"),
    ("GOOGLE_API_KEY", "the trial's token"),
    ("HELIOS_GATEWAY_URL", "the gateway"),
    ("HELIOS_GATEWAY_TOKEN", "the trial's token"),
    (
        "HELIOS_MODEL",
        "the model the pipeline chose, as `provider/model`",
    ),
    ("HELIOS_MODEL_NAME", "the model's name without its provider"),
    (
        "NO_PROXY",
        "the gateway's address added, so a proxy is not asked for it (also `no_proxy`)",
    ),
];

/// The variables of one trial.
pub(super) fn for_trial(
    address: SocketAddr,
    token: &str,
    model: &ModelRuntime,
) -> BTreeMap<String, String> {
    let base = format!("http://{address}");
    let model_name = model
        .id
        .split_once('/')
        .map_or(model.id.as_str(), |(_, name)| name);
    let mut env = BTreeMap::new();
    let mut set = |name: &str, value: &str| {
        env.insert(name.to_string(), value.to_string());
    };
    for name in [
        "ANTHROPIC_BASE_URL",
        "GOOGLE_GEMINI_BASE_URL",
        "GEMINI_API_BASE",
    ] {
        set(name, &base);
    }
    set("HELIOS_GATEWAY_URL", &base);
    for name in ["OPENAI_BASE_URL", "OPENAI_API_BASE"] {
        set(name, &format!("{base}/v1"));
    }
    for name in [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "HELIOS_GATEWAY_TOKEN",
    ] {
        set(name, token);
    }
    set("HELIOS_MODEL", &model.id);
    set("HELIOS_MODEL_NAME", model_name);
    let host = address.ip().to_string();
    set("NO_PROXY", &host);
    set("no_proxy", &host);
    env
}

/// `env` with the gateway's variables: they replace the agent's own, except the proxy
/// exceptions, which are joined.
pub fn merge(env: &mut BTreeMap<String, String>, gateway: &BTreeMap<String, String>) {
    for (name, value) in gateway {
        let joined = match env.get(name) {
            Some(own) if name.eq_ignore_ascii_case("no_proxy") && !own.is_empty() => {
                format!("{own},{value}")
            }
            _ => value.clone(),
        };
        env.insert(name.clone(), joined);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_given_is_documented() {
        let script = crate::model::scripted::Script::from_parts(
            Default::default(),
            vec![serde_json::json!({"text": "hi"})],
        )
        .unwrap();
        let model = ModelRuntime::scripted("demo", script, None);
        let env = for_trial("172.17.0.1:4000".parse().unwrap(), "tok", &model);
        let documented: Vec<&str> = VARIABLES.iter().map(|(name, _)| *name).collect();
        for name in env.keys() {
            let name = if name == "no_proxy" { "NO_PROXY" } else { name };
            assert!(documented.contains(&name), "{name} is not in VARIABLES");
        }
        assert_eq!(env["OPENAI_BASE_URL"], "http://172.17.0.1:4000/v1");
        assert_eq!(env["ANTHROPIC_BASE_URL"], "http://172.17.0.1:4000");
        assert_eq!(env["HELIOS_MODEL_NAME"], "demo");
    }

    #[test]
    fn merging_joins_the_agents_proxy_exceptions_and_replaces_keys() {
        let mut env = BTreeMap::from([
            ("NO_PROXY".to_string(), "internal.example".to_string()),
            ("OPENAI_API_KEY".to_string(), "sk-users-own".to_string()),
        ]);
        let gateway = BTreeMap::from([
            ("NO_PROXY".to_string(), "172.17.0.1".to_string()),
            ("OPENAI_API_KEY".to_string(), "tok".to_string()),
        ]);
        merge(&mut env, &gateway);
        assert_eq!(env["NO_PROXY"], "internal.example,172.17.0.1");
        assert_eq!(env["OPENAI_API_KEY"], "tok");
    }
}
