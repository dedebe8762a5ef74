//! `helios gc`: removes every container, image and installed agent's volume helios
//! labelled, and with
//! `--provider daytona` (or `all`) every Daytona sandbox it labelled.

use super::{ExitStatus, failure};
use crate::env::Provider;
use crate::env::{Engine, OpenOptions};

pub(super) async fn run(labels: &[String], providers: &[Provider]) -> ExitStatus {
    {
        let host = |name: &str| std::env::var(name).ok();
        let mut status = ExitStatus::Success;
        for &provider in providers {
            let engine = match Engine::open(provider, &OpenOptions::default(), &host).await {
                Ok(engine) => engine,
                Err(error) => {
                    failure::print(&error);
                    status = ExitStatus::Infrastructure;
                    continue;
                }
            };
            let removed = engine.gc(labels).await.map(|collected| match provider {
                Provider::Docker if collected.networks > 0 => format!(
                    "removed {} container(s), {} image(s), {} installed agent volume(s) and {} \
                     network(s) labelled by helios",
                    collected.instances, collected.images, collected.volumes, collected.networks
                ),
                Provider::Docker => format!(
                    "removed {} container(s), {} image(s) and {} installed agent volume(s) \
                     labelled by helios",
                    collected.instances, collected.images, collected.volumes
                ),
                Provider::Daytona => format!(
                    "deleted {} Daytona sandbox(es) labelled by helios",
                    collected.instances
                ),
            });
            match removed {
                Ok(line) => println!("{line}"),
                Err(error) => {
                    failure::print(&error);
                    status = ExitStatus::Infrastructure;
                }
            }
        }
        status
    }
}
