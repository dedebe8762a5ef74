//! The provider registry: one entry per provider of environments, saying what its
//! environments can do ([`Capabilities`]), what it needs of the host, how messages name it
//! and how to open it. Everything above `env` asks a [`Provider`] through this registry and
//! never names one: a new provider is a module of `env`, its [`Provider`] variant and one
//! entry in [`ENTRIES`].

use futures_util::future::BoxFuture;

use super::{Collected, Engine, EnvError, OpenOptions, Provider, daytona, docker};

/// What a provider's environments can do; the runner decides by these, before any trial,
/// what a task may ask of the provider that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Its sandboxes run on this machine, and so take from the run's CPU and memory budget.
    pub runs_here: bool,
    /// Where images are built.
    pub builds: Builds,
    /// A sandbox can be frozen into an image, for a verifier in a fresh sandbox of it
    /// (`isolation = "separate"`).
    pub freezes: bool,
    /// A verifier can run in an environment of its own (`environment_mode = "separate"`).
    pub separate_environments: bool,
    /// Volumes can be made and mounted: installed agents, installed once and mounted
    /// read-only, and their image checks.
    pub installed_agents: bool,
    /// Its sandboxes reach the model gateway on this machine.
    pub reaches_gateway: bool,
    /// Multi-container environments (a task's Compose file).
    pub compose: bool,
    /// A sandbox's network can change between phases.
    pub switches_network: bool,
    /// `network_mode = "allowlist"` is enforced.
    pub allowlist: bool,
    /// Commands run as another user (`user` of task.toml).
    pub users: bool,
}

/// Where a provider's images are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builds {
    /// helios builds them on this machine, from the task's build context.
    Here,
    /// The provider builds them itself from the Dockerfile's text alone: a Dockerfile that
    /// reads its build context cannot be built there.
    FromText,
}

/// The host's environment variables, as the runner reads them.
pub type Host<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// How a provider is opened: its settings from `options`, its credentials through `host`.
pub type Open = for<'a> fn(
    &'a OpenOptions,
    &'a (dyn Fn(&str) -> Option<String> + Sync),
) -> BoxFuture<'a, Result<Engine, EnvError>>;

/// One provider, as the registry knows it.
pub struct Entry {
    pub provider: Provider,
    /// How prose names it (`Docker`, `Daytona`).
    pub title: &'static str,
    /// How messages name its engine (`the Docker engine`).
    pub engine: &'static str,
    /// What one of its environments is called (`container`, `sandbox`).
    pub instance: &'static str,
    /// The same in a count (`container(s)`).
    pub instances: &'static str,
    pub capabilities: Capabilities,
    /// What is missing on the host before it can be opened (its key), with the fix.
    pub missing_credentials: fn(&Host<'_>) -> Option<String>,
    /// For [`Builds::FromText`]: the first line of a Dockerfile that needs the build
    /// context, and its instruction.
    pub needs_context: fn(&str) -> Option<(usize, String)>,
    /// What `helios gc` says it removed.
    pub collected: fn(&Collected) -> String,
    pub open: Open,
}

/// Every provider helios knows, in [`Provider`]'s order.
pub static ENTRIES: [Entry; 2] = [
    Entry {
        provider: Provider::Docker,
        title: "Docker",
        engine: "the Docker engine",
        instance: "container",
        instances: "container(s)",
        capabilities: Capabilities {
            runs_here: true,
            builds: Builds::Here,
            freezes: true,
            separate_environments: true,
            installed_agents: true,
            reaches_gateway: true,
            compose: true,
            switches_network: true,
            allowlist: true,
            users: true,
        },
        missing_credentials: |_| None,
        needs_context: |_| None,
        collected: docker_collected,
        open: |options, _host| {
            Box::pin(async move {
                Ok(Engine::new(
                    docker::DockerEngine::connect(options.docker_calls).await?,
                ))
            })
        },
    },
    Entry {
        provider: Provider::Daytona,
        title: "Daytona",
        engine: "Daytona",
        instance: "sandbox",
        instances: "sandbox(es)",
        capabilities: Capabilities {
            runs_here: false,
            builds: Builds::FromText,
            freezes: false,
            separate_environments: false,
            installed_agents: false,
            reaches_gateway: false,
            compose: false,
            switches_network: false,
            allowlist: false,
            users: false,
        },
        missing_credentials: |host| daytona::missing_key(host),
        needs_context: |text| {
            daytona::dockerfile::needs_context(text).map(|n| (n.line, n.instruction))
        },
        collected: |collected| {
            format!(
                "deleted {} Daytona sandbox(es) labelled by helios",
                collected.instances
            )
        },
        open: |options, host| {
            Box::pin(async move {
                let config = daytona::Config::resolve(&options.settings.daytona, host)?;
                open_daytona(config)
            })
        },
    },
];

fn docker_collected(collected: &Collected) -> String {
    if collected.networks > 0 {
        format!(
            "removed {} container(s), {} image(s), {} installed agent volume(s) and {} \
             network(s) labelled by helios",
            collected.instances, collected.images, collected.volumes, collected.networks
        )
    } else {
        format!(
            "removed {} container(s), {} image(s) and {} installed agent volume(s) labelled by \
             helios",
            collected.instances, collected.images, collected.volumes
        )
    }
}

#[cfg(feature = "daytona")]
fn open_daytona(config: daytona::Config) -> Result<Engine, EnvError> {
    Ok(Engine::new(daytona::DaytonaEngine::new(config)?))
}

#[cfg(not(feature = "daytona"))]
fn open_daytona(_config: daytona::Config) -> Result<Engine, EnvError> {
    Err(EnvError::Unsupported(
        "this helios was built without the `daytona` feature; rebuild with it to use Daytona"
            .into(),
    ))
}

impl Provider {
    /// Every provider, in order.
    pub fn all() -> impl Iterator<Item = Provider> {
        ENTRIES.iter().map(|e| e.provider)
    }

    /// Its entry in the registry.
    pub fn entry(self) -> &'static Entry {
        ENTRIES
            .iter()
            .find(|e| e.provider == self)
            .expect("every provider has a registry entry")
    }

    pub fn capabilities(self) -> Capabilities {
        self.entry().capabilities
    }

    /// How messages name its engine (`the Docker engine`).
    pub fn engine_name(self) -> &'static str {
        self.entry().engine
    }

    /// What one of its environments is called (`container`, `sandbox`).
    pub fn instance_noun(self) -> &'static str {
        self.entry().instance
    }

    /// What its environments are called in a count (`container(s)`).
    pub fn instances_noun(self) -> &'static str {
        self.entry().instances
    }

    /// How prose names it (`Docker`).
    pub fn title(self) -> &'static str {
        self.entry().title
    }

    /// The providers that can do what `can` asks, by title (`Docker`), for a hint.
    pub fn able(can: impl Fn(&Capabilities) -> bool) -> String {
        let able: Vec<&str> = ENTRIES
            .iter()
            .filter(|e| can(&e.capabilities))
            .map(|e| e.provider.as_str())
            .collect();
        able.iter()
            .map(|name| format!("`provider = \"{name}\"`"))
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_one_entry_in_order() {
        let names: Vec<&str> = Provider::all().map(Provider::as_str).collect();
        assert_eq!(names, Provider::ALL);
        for provider in Provider::all() {
            assert_eq!(provider.entry().provider, provider);
            assert_eq!(Provider::from_name(provider.as_str()), Some(provider));
        }
    }

    #[test]
    fn a_provider_building_from_text_finds_what_needs_a_context() {
        for provider in Provider::all() {
            let entry = provider.entry();
            let found = (entry.needs_context)("FROM x\nCOPY a.txt /a.txt\n");
            match entry.capabilities.builds {
                Builds::FromText => assert_eq!(found.map(|(line, _)| line), Some(2)),
                Builds::Here => assert_eq!(found, None),
            }
        }
    }
}
