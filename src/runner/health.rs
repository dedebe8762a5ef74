//! A task's healthcheck, with Docker's HEALTHCHECK semantics: checks every
//! `start_interval_sec` during the start period, where failures do not count, then every
//! `interval_sec` until one passes or `retries` fail in a row.

use std::time::Duration;

use tokio::time::Instant;

use crate::env::{EnvError, ExecSpec, Instance};
use crate::manifest::task::Healthcheck;

/// Runs `check` in `instance` until it passes; [`EnvError::Unhealthy`] when it never does.
pub(crate) async fn wait_healthy(
    instance: &Instance,
    check: &Healthcheck,
    workdir: Option<String>,
    user: Option<String>,
) -> Result<(), EnvError> {
    let started = Instant::now();
    let start_period = Duration::from_secs_f64(check.start_period_sec.max(0.0));
    let mut failures = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let output = instance
            .exec(&ExecSpec {
                command: check.command.clone(),
                workdir: workdir.clone(),
                env: Default::default(),
                deadline: Some(Duration::from_secs_f64(check.timeout_sec)),
                user: user.clone(),
            })
            .await?;
        if output.exit_code == Some(0) && !output.timed_out {
            return Ok(());
        }
        let in_start_period = started.elapsed() < start_period;
        if !in_start_period {
            failures += 1;
            if failures >= check.retries {
                let mut text = output.stdout;
                text.push_str(&output.stderr);
                if output.timed_out {
                    text.push_str(&format!("(timed out after {}s)", check.timeout_sec));
                }
                let tail: Vec<&str> = text.lines().rev().take(10).collect();
                return Err(EnvError::Unhealthy {
                    command: check.command.clone(),
                    attempts,
                    seconds: started.elapsed().as_secs_f64(),
                    output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
        }
        let wait = if in_start_period {
            check.start_interval_sec
        } else {
            check.interval_sec
        };
        tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    }
}
