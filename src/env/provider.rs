//! Where trials run: the providers of environments, and the settings of each that a
//! pipeline can give.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where trials run.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// The local Docker engine.
    #[default]
    Docker,
    /// Daytona cloud sandboxes (`DAYTONA_API_KEY`, `DAYTONA_API_URL`, `DAYTONA_TARGET`).
    Daytona,
}

impl Provider {
    pub const ALL: [&'static str; 2] = ["docker", "daytona"];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Docker => "docker",
            Provider::Daytona => "daytona",
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        match name {
            "docker" => Some(Provider::Docker),
            "daytona" => Some(Provider::Daytona),
            _ => None,
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Each provider's own settings, as a pipeline's `[environment.<provider>]` sections give
/// them: what opens a provider reads its part and nothing else, so the code that runs
/// trials passes them through without naming a provider.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderSettings {
    /// `[environment.daytona]`.
    pub daytona: DaytonaSettings,
}

/// The variables providers read from this process's environment (an API key, a URL, a
/// region), with what a program gives instead: a variable given (set, or explicitly
/// unset) is never read from the environment, so a program's credentials are never mixed
/// with the shell's.
#[derive(Clone, Default)]
pub struct HostVariables {
    given: BTreeMap<String, Option<String>>,
}

impl HostVariables {
    /// Gives `name` the value `value`, or makes it unset when `None`, whatever the
    /// environment says.
    pub fn give(&mut self, name: impl Into<String>, value: Option<String>) {
        self.given.insert(name.into(), value);
    }

    /// `name`'s value: the given one if any, else the environment's.
    pub fn get(&self, name: &str) -> Option<String> {
        match self.given.get(name) {
            Some(given) => given.clone(),
            None => std::env::var(name).ok(),
        }
    }
}

impl std::fmt::Debug for HostVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the values are keys.
        f.debug_set().entries(self.given.keys()).finish()
    }
}

/// `[environment.daytona]`: how helios manages Daytona sandboxes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaytonaSettings {
    /// The region sandboxes are created in (default: `DAYTONA_TARGET`, else the
    /// organization's default region).
    #[schemars(length(min = 1))]
    pub target: Option<String>,
    /// Sandbox create calls in flight at once (default 8).
    #[schemars(range(min = 1))]
    pub max_creates: Option<u32>,
    /// Seconds between two looks at a sandbox that is not ready yet (default 1).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub poll_interval_sec: Option<f64>,
    /// Seconds a sandbox may take to be ready, its image build included (default: the
    /// task's `[environment] build_timeout_sec`).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub ready_timeout_sec: Option<f64>,
    /// Minutes without activity before Daytona stops a sandbox; 0 never (default 0: helios
    /// deletes every sandbox itself, and a sandbox must not stop under a quiet agent).
    #[schemars(range(min = 0))]
    pub auto_stop_interval: Option<u32>,
    /// Minutes a stopped sandbox is kept before Daytona archives it; 0 is Daytona's
    /// longest interval.
    #[schemars(range(min = 0))]
    pub auto_archive_interval: Option<u32>,
    /// Minutes a stopped sandbox is kept before Daytona deletes it; 0 at once, -1 never
    /// (default 0: a sandbox that stopped is not worth paying for).
    #[schemars(range(min = -1))]
    pub auto_delete_interval: Option<i32>,
    /// Retries of a failed call to Daytona (429, 5xx, lost connections); default 5.
    pub max_retries: Option<u32>,
    /// The toolbox endpoint, with `{id}` for the sandbox id (default: asked of Daytona with
    /// `GET /sandbox/{id}/toolbox-proxy-url`). The older form is
    /// `https://app.daytona.io/api/toolbox/{id}/toolbox`.
    #[schemars(regex(pattern = r"\{id\}"))]
    pub toolbox_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_variable_wins_over_the_environment_even_when_given_unset() {
        let mut variables = HostVariables::default();
        assert!(variables.get("PATH").is_some(), "read from the environment");
        variables.give("PATH", None);
        assert_eq!(variables.get("PATH"), None);
        variables.give("PATH", Some("/given".into()));
        assert_eq!(variables.get("PATH").as_deref(), Some("/given"));
    }

    #[test]
    fn host_variables_never_print_their_values() {
        let mut variables = HostVariables::default();
        variables.give("DAYTONA_API_KEY", Some("secret".into()));
        let printed = format!("{variables:?}");
        assert!(printed.contains("DAYTONA_API_KEY") && !printed.contains("secret"));
    }
}
