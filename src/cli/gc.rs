//! `helios gc`: removes everything helios labelled on a provider (containers, images,
//! installed agents' volumes and networks on Docker; sandboxes on Daytona), or on `all`.

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
            let removed = engine
                .gc(labels)
                .await
                .map(|collected| (provider.entry().collected)(&collected));
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
