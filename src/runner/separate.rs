//! Harbor's separate verifier: a fresh environment of the verifier's own image, given the
//! agent's `/logs/artifacts` and each declared artifact at its own path, where the tests
//! the image holds run. Used by trials and by `helios regrade`.

use std::path::Path;

use crate::env::{Engine, EnvError, EnvSpec, Instance};
use crate::manifest::task::ArtifactSpec;
use crate::verify::steps::{self, StepRun};

/// How a separate verification went, and what removing its environment left.
pub(crate) struct Verified {
    pub outcome: Result<StepRun, EnvError>,
    /// The environment's id and why it could not be removed, if it could not.
    pub leftover: Option<(Instance, EnvError)>,
}

/// Starts `spec`, seeds it from `dir/artifacts/` (the agent's `/logs/artifacts` as
/// collected, and the declared `artifacts` at their paths), runs the tests, copies its
/// `/logs/verifier` to `dir/verifier/`, and removes it whatever happened.
pub(crate) async fn verify(
    engine: &Engine,
    spec: &EnvSpec,
    grace: &super::trial::Grace,
    artifacts: &[ArtifactSpec],
    dir: &Path,
    tests: &steps::TestsSpec<'_>,
) -> Verified {
    let created = grace
        .bound(engine.create(spec, grace.cancel()))
        .await
        .unwrap_or(Err(EnvError::Cancelled));
    let instance = match created {
        Ok(instance) => instance,
        Err(error) => {
            return Verified {
                outcome: Err(error),
                leftover: None,
            };
        }
    };
    let outcome = tokio::select! {
        biased;
        _ = grace.cancel().cancelled() => Err(EnvError::Cancelled),
        outcome = seed_and_test(&instance, artifacts, dir, tests) => outcome,
    };
    let leftover = grace.remove(&instance).await.err().map(|e| (instance, e));
    Verified { outcome, leftover }
}

async fn seed_and_test(
    instance: &Instance,
    artifacts: &[ArtifactSpec],
    dir: &Path,
    tests: &steps::TestsSpec<'_>,
) -> Result<StepRun, EnvError> {
    instance.ready().await?;
    instance.stage_dirs(super::trial::LOG_DIRS, 0o777)?;
    let collected = dir.join("artifacts");
    if collected.is_dir() {
        instance.upload_dir(&collected, "logs/artifacts").await?;
    }
    for artifact in artifacts {
        let Some(path) = artifact.source.strip_prefix('/') else {
            continue;
        };
        let host = collected.join(super::artifacts::destination(artifact));
        if host.is_dir() {
            instance.upload_dir(&host, path).await?;
        } else if let Ok(bytes) = std::fs::read(&host) {
            let archive = crate::env::tarball::pack_file(path, &bytes, 0o644)
                .map_err(|e| EnvError::io("packing an artifact", e))?;
            instance.upload_archive(archive).await?;
        }
    }
    let run = steps::run_tests(instance, tests).await?;
    instance
        .download_dir(
            "/logs/verifier",
            &dir.join("verifier"),
            crate::env::tarball::LOGS_CAP,
        )
        .await?;
    Ok(run)
}
