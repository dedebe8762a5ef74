//! The Daytona provider: every trial in a cloud sandbox, over Daytona's documented REST API.
//! A sandbox is created from the task's image or Dockerfile (a declarative build), with the
//! task's resources, environment and helios's labels; its state is polled until `started`;
//! commands and files go through its toolbox (`toolbox.rs`); it is deleted at the end, with
//! retries. Create calls are bounded, and 429 and 5xx answers are retried with backoff.

#[cfg(feature = "daytona")]
mod api;
pub mod dockerfile;
#[cfg(feature = "daytona")]
mod engine;
#[cfg(feature = "daytona")]
mod toolbox;

use std::time::Duration;

use super::{EnvError, Provider};
use crate::env::{DaytonaSettings, HostVariables};
use crate::retry::RetryPolicy;

#[cfg(feature = "daytona")]
pub(super) use engine::DaytonaEngine;

pub const KEY_VARIABLE: &str = "DAYTONA_API_KEY";
pub const URL_VARIABLE: &str = "DAYTONA_API_URL";
pub const TARGET_VARIABLE: &str = "DAYTONA_TARGET";
/// Daytona's own default, as its SDKs have it.
pub const DEFAULT_API_URL: &str = "https://app.daytona.io/api";
/// A label unique to one create call, to find what a lost or cancelled call made.
pub const CREATE_LABEL: &str = "helios.create";

/// Credentials a program gives instead of the `DAYTONA_*` variables.
#[derive(Clone)]
pub struct Credentials {
    pub api_key: String,
    /// `DAYTONA_API_URL` by default, then [`DEFAULT_API_URL`].
    pub api_url: Option<String>,
    /// `DAYTONA_TARGET` by default.
    pub target: Option<String>,
}

impl Credentials {
    /// The value these credentials give the `DAYTONA_*` variable `name`, if any.
    pub fn lookup(&self, name: &str) -> Option<String> {
        match name {
            KEY_VARIABLE => Some(self.api_key.clone()),
            URL_VARIABLE => self.api_url.clone(),
            TARGET_VARIABLE => self.target.clone(),
            _ => None,
        }
    }
}

impl From<Credentials> for HostVariables {
    /// The `DAYTONA_*` variables these credentials stand for, the unset ones included.
    fn from(credentials: Credentials) -> HostVariables {
        let mut variables = HostVariables::default();
        for name in [KEY_VARIABLE, URL_VARIABLE, TARGET_VARIABLE] {
            variables.give(name, credentials.lookup(name));
        }
        variables
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"<hidden>")
            .field("api_url", &self.api_url)
            .field("target", &self.target)
            .finish()
    }
}

/// Everything the provider needs, resolved.
#[derive(Clone)]
#[cfg_attr(not(feature = "daytona"), allow(dead_code))]
pub struct Config {
    pub api_url: String,
    api_key: String,
    pub target: Option<String>,
    /// The toolbox endpoint with `{id}`; asked of the API when `None`.
    pub toolbox_url: Option<String>,
    pub max_creates: usize,
    pub poll_interval: Duration,
    /// Instead of each task's build timeout.
    pub ready_timeout: Option<Duration>,
    pub auto_stop_interval: u32,
    pub auto_archive_interval: Option<u32>,
    pub auto_delete_interval: i32,
    pub retry: RetryPolicy,
}

/// The problem with the host's Daytona key, if there is one (for the checks before a run).
pub fn missing_key(host: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    host(KEY_VARIABLE)
        .filter(|k| !k.trim().is_empty())
        .is_none()
        .then(|| {
            format!(
                "the Daytona provider needs an API key in `{KEY_VARIABLE}`, which is not set \
                 (hint: create a key in the Daytona dashboard and `export {KEY_VARIABLE}=...`; \
                 `{URL_VARIABLE}` and `{TARGET_VARIABLE}` choose the endpoint and the region)"
            )
        })
}

impl Config {
    /// Settings from the pipeline, credentials from the host's `DAYTONA_*` variables.
    pub fn resolve(
        settings: &DaytonaSettings,
        host: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, EnvError> {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let api_key = non_empty(host(KEY_VARIABLE))
            .ok_or_else(|| EnvError::Auth(missing_key(&|_| None).unwrap_or_default()))?;
        let api_url = non_empty(host(URL_VARIABLE)).unwrap_or_else(|| DEFAULT_API_URL.to_string());
        reqwest::Url::parse(&api_url).map_err(|e| {
            EnvError::engine(Provider::Daytona, format!("`{api_url}` is not a URL: {e}"))
        })?;
        let target =
            non_empty(settings.target.clone()).or_else(|| non_empty(host(TARGET_VARIABLE)));
        let retry = RetryPolicy {
            max_attempts: settings.max_retries.unwrap_or(5) as usize + 1,
            ..RetryPolicy::default()
        };
        Ok(Config {
            api_url,
            api_key,
            target,
            toolbox_url: settings.toolbox_url.clone(),
            max_creates: settings.max_creates.unwrap_or(8).max(1) as usize,
            poll_interval: Duration::from_secs_f64(settings.poll_interval_sec.unwrap_or(1.0)),
            ready_timeout: settings.ready_timeout_sec.map(Duration::from_secs_f64),
            auto_stop_interval: settings.auto_stop_interval.unwrap_or(0),
            auto_archive_interval: settings.auto_archive_interval,
            auto_delete_interval: settings.auto_delete_interval.unwrap_or(0),
            retry,
        })
    }
}

#[cfg(all(test, feature = "daytona"))]
mod tests {
    use std::collections::BTreeMap;

    use super::engine::*;
    use super::*;
    use crate::env::EnvSpec;

    fn host(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn credentials_come_from_daytonas_own_variables() {
        let settings = DaytonaSettings::default();
        let config = Config::resolve(&settings, &host(&[(KEY_VARIABLE, "k")])).unwrap();
        assert_eq!(config.api_url, DEFAULT_API_URL);
        assert_eq!(config.target, None);
        assert_eq!(config.max_creates, 8);
        assert_eq!(config.auto_stop_interval, 0);
        assert_eq!(config.auto_delete_interval, 0);
        assert_eq!(config.retry.max_attempts, 6);
        let config = Config::resolve(
            &DaytonaSettings {
                target: Some("us".into()),
                max_retries: Some(0),
                ..settings.clone()
            },
            &host(&[
                (KEY_VARIABLE, "k"),
                (URL_VARIABLE, "http://localhost:3000/api"),
                (TARGET_VARIABLE, "eu"),
            ]),
        )
        .unwrap();
        assert_eq!(config.api_url, "http://localhost:3000/api");
        assert_eq!(config.target.as_deref(), Some("us"), "the pipeline's wins");
        assert_eq!(config.retry.max_attempts, 1);
    }

    #[test]
    fn a_missing_or_blank_key_is_an_auth_error_naming_the_variable() {
        for vars in [&[][..], &[(KEY_VARIABLE, "  ")][..]] {
            match Config::resolve(&DaytonaSettings::default(), &host(vars)) {
                Err(EnvError::Auth(message)) => assert!(message.contains(KEY_VARIABLE)),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("a config without a key"),
            }
            assert!(missing_key(&host(vars)).is_some());
        }
        assert!(missing_key(&host(&[(KEY_VARIABLE, "k")])).is_none());
        assert!(matches!(
            Config::resolve(
                &DaytonaSettings::default(),
                &host(&[(KEY_VARIABLE, "k"), (URL_VARIABLE, "not a url")])
            ),
            Err(EnvError::Engine {
                provider: Provider::Daytona,
                ..
            })
        ));
    }

    #[test]
    fn resources_round_up_to_what_daytona_allocates() {
        let config = Config::resolve(
            &DaytonaSettings::default(),
            &host(&[(KEY_VARIABLE, "k"), (TARGET_VARIABLE, "eu")]),
        )
        .unwrap();
        let engine = DaytonaEngine::new(config).unwrap();
        let spec = EnvSpec {
            image: "python:3.12-slim".into(),
            cpus: Some(1.5),
            memory_mb: Some(512),
            storage_mb: Some(10 * 1024 + 1),
            gpus: Some(0),
            no_network: true,
            labels: BTreeMap::from([("helios.trial".to_string(), "t".to_string())]),
            ..EnvSpec::default()
        };
        let body = serde_json::to_value(engine.create_body(&spec, "n1")).unwrap();
        assert_eq!(body["cpu"], 2);
        assert_eq!(body["memory"], 1);
        assert_eq!(body["disk"], 11);
        assert_eq!(body.get("gpu"), None);
        assert_eq!(body["networkBlockAll"], true);
        assert_eq!(body["target"], "eu");
        assert_eq!(body["labels"]["helios.trial"], "t");
        assert_eq!(body["labels"][CREATE_LABEL], "n1");
        assert_eq!(
            body["buildInfo"]["dockerfileContent"],
            "FROM python:3.12-slim\n"
        );
        assert_eq!(
            body.get("snapshot"),
            None,
            "resources need a build, not a snapshot"
        );
    }
}
