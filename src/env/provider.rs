//! Where trials run: the providers of environments, and the settings of each that a
//! pipeline can give.

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
