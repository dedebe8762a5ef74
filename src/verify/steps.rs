//! Running verification in the container: the task's `tests/test.sh`, then the pipeline's
//! extra `[[verify]]` steps, each writing its reward where it is read back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sha2::Digest as _;

use crate::env::{EnvError, ExecSpec, Instance};

/// How one verification step ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepRun {
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    /// Reward files that were there before the tests started (an agent wrote them).
    pub stale_rewards: Vec<String>,
    /// SHA-256 of each reward file as the tests left it, by file name.
    pub reward_sums: BTreeMap<String, String>,
}

/// Before the tests: note and remove reward files that are already there. After them:
/// the sums of what they wrote, on standard output (the tests' own output goes to a file).
/// The look for stale files runs in a subshell, so the tests start in the exec's working
/// directory (the task's `workdir` or the image's `WORKDIR`: Terminal-Bench tests rely on it).
const TESTS: &str = "(cd /logs/verifier 2>/dev/null && for f in reward.txt reward.json; do \
    [ -e \"$f\" ] && echo \"helios-stale: /logs/verifier/$f\"; done); \
    rm -f /logs/verifier/reward.txt /logs/verifier/reward.json; mkdir -p /logs/verifier; \
    bash /tests/test.sh > /logs/verifier/test-stdout.txt 2>&1; status=$?; \
    (cd /logs/verifier && sha256sum reward.txt reward.json 2>/dev/null); exit $status";

/// How a task's tests run.
#[derive(Debug, Clone)]
pub struct TestsSpec<'a> {
    /// Directories copied to `/tests` in order, a later one's files over an earlier's (a
    /// step's `tests/` over the task's).
    pub dirs: &'a [std::path::PathBuf],
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// The user the tests run as; the image's user when `None`.
    pub user: Option<String>,
}

/// Copies the tests to `/tests` and runs `bash /tests/test.sh` with its output in
/// `/logs/verifier/test-stdout.txt`, after removing stale reward files.
pub async fn run_tests(instance: &Instance, tests: &TestsSpec<'_>) -> Result<StepRun, EnvError> {
    for dir in tests.dirs.iter().filter(|d| d.is_dir()) {
        instance.upload_dir(dir, "tests").await?;
    }
    let spec = ExecSpec {
        command: format!("{{ {TESTS}; }}"),
        workdir: tests.workdir.clone(),
        env: tests.env.clone(),
        deadline: Some(tests.timeout),
        user: tests.user.clone(),
    };
    let output = instance.exec(&spec).await?;
    let mut run = StepRun {
        exit_code: output.exit_code,
        timed_out: output.timed_out,
        ..StepRun::default()
    };
    for line in output.stdout.lines() {
        if let Some(file) = line.strip_prefix("helios-stale: ") {
            run.stale_rewards.push(file.to_string());
        } else if let Some((sum, file)) = line.split_once("  ")
            && sum.len() == 64
        {
            run.reward_sums.insert(file.to_string(), sum.to_string());
        }
    }
    Ok(run)
}

/// What looks like an agent forging its reward: reward files it left before the tests,
/// and reward files that differ, once collected into `verifier_dir`, from what the tests
/// wrote.
pub fn tampering(tests: &StepRun, verifier_dir: &Path) -> Vec<String> {
    let mut reasons: Vec<String> = tests
        .stale_rewards
        .iter()
        .map(|file| format!("`{file}` existed before the verifier started"))
        .collect();
    if tests.timed_out {
        return reasons;
    }
    for name in ["reward.txt", "reward.json"] {
        let collected = std::fs::read(verifier_dir.join(name))
            .ok()
            .map(|bytes| hex::encode(sha2::Sha256::digest(&bytes)));
        let written = tests.reward_sums.get(name);
        if collected.as_ref() != written {
            reasons.push(format!(
                "`/logs/verifier/{name}` changed after the verifier ended"
            ));
        }
    }
    reasons
}

/// Runs an extra step: its command writes its reward into `$HELIOS_REWARD_DIR`
/// (`/logs/verifier/<name>/`), and its output goes to `stdout.txt` there.
pub async fn run_step(
    instance: &Instance,
    name: &str,
    command: &str,
    workdir: Option<String>,
    mut env: BTreeMap<String, String>,
    timeout: Duration,
) -> Result<StepRun, EnvError> {
    let dir = format!("/logs/verifier/{name}");
    env.insert("HELIOS_REWARD_DIR".into(), dir.clone());
    let spec = ExecSpec {
        command: format!("rm -rf {dir}; mkdir -p {dir}; {{ {command}\n}} > {dir}/stdout.txt 2>&1"),
        workdir,
        env,
        deadline: Some(timeout),
        user: None,
    };
    run(instance, &spec).await
}

async fn run(instance: &Instance, spec: &ExecSpec) -> Result<StepRun, EnvError> {
    let output = instance.exec(spec).await?;
    Ok(StepRun {
        exit_code: output.exit_code,
        timed_out: output.timed_out,
        ..StepRun::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(text: &str) -> String {
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn a_reward_the_agent_left_or_rewrote_is_suspected_tampering() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("reward.txt"), "1\n").unwrap();
        let honest = StepRun {
            reward_sums: BTreeMap::from([("reward.txt".to_string(), sum("1\n"))]),
            ..StepRun::default()
        };
        assert!(tampering(&honest, dir.path()).is_empty());
        let rewritten = StepRun {
            reward_sums: BTreeMap::from([("reward.txt".to_string(), sum("0\n"))]),
            ..StepRun::default()
        };
        assert_eq!(
            tampering(&rewritten, dir.path()),
            ["`/logs/verifier/reward.txt` changed after the verifier ended"]
        );
        let left = StepRun {
            stale_rewards: vec!["/logs/verifier/reward.txt".into()],
            ..honest
        };
        assert_eq!(
            tampering(&left, dir.path()),
            ["`/logs/verifier/reward.txt` existed before the verifier started"]
        );
    }
}
