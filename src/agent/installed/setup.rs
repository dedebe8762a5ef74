//! Installed agents on an engine: installing a recipe into its volume, and probing whether a
//! task image can run the agent from that volume. Which installs and images a run needs, and
//! when, is the runner's; how to install and what a probe's answer means is here.

use std::path::Path;
use std::time::Duration;

use super::{COMPLETE_MARKER, RUNTIME_MISSING, Recipe};
use crate::env::{Engine, EnvError, InstallSpec, Labels, ProbeSpec};
use crate::template::TemplateError;

/// How long an installed agent's install may take.
pub(crate) const INSTALL_TIMEOUT: Duration = Duration::from_secs(1200);

/// How long the probe of a task image may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an install or a probe could not be done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    /// The recipe's install script (or the probe made from it) does not render.
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Env(#[from] EnvError),
}

/// What the probe of a task image found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fitness {
    /// The image runs the agent.
    Fit,
    /// The image lacks `missing`; `fix` says what image to use instead.
    Unfit { missing: String, fix: &'static str },
}

/// The fix for an image that cannot run binaries from the shared volume.
const GLIBC_IMAGE: &str = "build the task's image from a glibc-based x86-64 image \
     (Debian, Ubuntu, Fedora; not Alpine, which is musl, nor scratch or distroless \
     static): installed agents run from a shared volume whose binaries need glibc";

/// The fix for an image whose glibc is older than the catalog's runtimes need.
const NEWER_GLIBC: &str = "use an image with a newer glibc (Debian 12 or Ubuntu 22.04 and \
     later have glibc 2.34 or newer, which every catalog runtime runs on)";

/// Installs `recipe` into `volume` on `engine`, its output to `log`; a volume that already
/// holds a complete install of the same recipe is kept. Whether it installed now.
pub(crate) async fn install(
    engine: &Engine,
    recipe: &Recipe,
    volume: &str,
    labels: &Labels,
    log: &Path,
) -> Result<bool, SetupError> {
    let script = recipe.install_script()?;
    let digest = recipe.digest()?;
    let volume_labels = labels.install(&recipe.agent, &digest);
    let mut container_labels = volume_labels.clone();
    container_labels.extend(labels.container("install", &recipe.agent));
    Ok(engine
        .install(&InstallSpec {
            volume,
            image: &recipe.installer_image,
            target: &recipe.prefix,
            script: &script,
            marker: COMPLETE_MARKER,
            labels: &volume_labels,
            container_labels: &container_labels,
            timeout: INSTALL_TIMEOUT,
            log,
        })
        .await?)
}

/// Tries, in a container of `image` with `volume` mounted, glibc's loader and the agent's
/// runtime: whether the image can run `recipe`'s agent.
pub(crate) async fn probe(
    engine: &Engine,
    recipe: &Recipe,
    image: &str,
    volume: &str,
    labels: &Labels,
) -> Result<Fitness, SetupError> {
    let script = recipe.image_check_script()?;
    let container_labels = labels.container("check", &recipe.agent);
    let output = engine
        .probe(&ProbeSpec {
            image,
            volume,
            target: &recipe.prefix,
            labels: &container_labels,
            script: &script,
            timeout: PROBE_TIMEOUT,
        })
        .await;
    let output = match output {
        Ok(output) => output,
        // No shell starts: nothing of the image runs.
        Err(EnvError::Engine { message, .. }) => {
            return Ok(Fitness::Unfit {
                missing: format!("a shell that starts (`/bin/sh -c` failed: {message})"),
                fix: GLIBC_IMAGE,
            });
        }
        Err(error) => return Err(error.into()),
    };
    Ok(fitness(&output.stdout, output.exit_code))
}

/// What the probe's output says: `helios-fit` and a zero status, or `helios-missing: WHAT`.
fn fitness(stdout: &str, exit_code: Option<i64>) -> Fitness {
    if stdout.contains("helios-fit") && exit_code == Some(0) {
        return Fitness::Fit;
    }
    let said = stdout
        .lines()
        .find_map(|l| l.strip_prefix("helios-missing: "))
        .map(str::to_string);
    match said {
        Some(missing) if missing.starts_with(RUNTIME_MISSING) => Fitness::Unfit {
            missing,
            fix: NEWER_GLIBC,
        },
        Some(missing) => Fitness::Unfit {
            missing,
            fix: GLIBC_IMAGE,
        },
        None => Fitness::Unfit {
            missing: format!(
                "a `/bin/sh` and a `bash` that run (the check exited with {}: {})",
                exit_code.map_or_else(|| "no status".to_string(), |c| c.to_string()),
                stdout.trim()
            ),
            fix: GLIBC_IMAGE,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_that_says_fit_and_exits_zero_is_fit() {
        assert_eq!(fitness("helios-fit\n", Some(0)), Fitness::Fit);
        assert!(matches!(
            fitness("helios-fit\n", Some(1)),
            Fitness::Unfit { .. }
        ));
    }

    #[test]
    fn a_missing_runtime_asks_for_a_newer_glibc_and_anything_else_for_glibc() {
        let runtime = format!("helios-missing: {RUNTIME_MISSING} (node)\n");
        assert_eq!(
            fitness(&runtime, Some(0)),
            Fitness::Unfit {
                missing: format!("{RUNTIME_MISSING} (node)"),
                fix: NEWER_GLIBC,
            }
        );
        let loader = format!("helios-missing: {}\n", super::super::LOADER_MISSING);
        assert!(matches!(
            fitness(&loader, Some(0)),
            Fitness::Unfit {
                fix: GLIBC_IMAGE,
                ..
            }
        ));
    }

    #[test]
    fn a_probe_that_says_nothing_reports_its_status_and_output() {
        let Fitness::Unfit { missing, fix } = fitness("sh: bash: not found", Some(127)) else {
            panic!("fit");
        };
        assert!(
            missing.contains("exited with 127: sh: bash: not found"),
            "{missing}"
        );
        assert_eq!(fix, GLIBC_IMAGE);
    }
}
