//! Live progress on standard error: bars on a terminal, one line per event otherwise (logs,
//! CI), so a long run always shows that it moves.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use super::memory;
use crate::env::Provider;
use crate::events::TrialStatus;
use crate::events::{BuildOutcome, Reporter, RunEvent, SkipReason};

/// Consumes events until the channel closes.
pub async fn report(events: UnboundedReceiver<RunEvent>) {
    crate::events::feed(events, vec![reporter()]).await;
}

/// The progress reporter: bars on a terminal, lines otherwise.
pub fn reporter() -> Box<dyn Reporter> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(Lines::default())
    }
}

impl<V: View + Send> Reporter for V {
    fn event(&mut self, event: &RunEvent) {
        self.show(event);
    }

    fn finish(&mut self) {
        self.close();
    }
}

trait View {
    fn show(&mut self, event: &RunEvent);
    fn close(&mut self) {}
}

/// Text for a finished trial: `completed reward=1`, `timed_out (agent_timeout)`.
fn outcome(status: TrialStatus, reward: Option<f64>, error: Option<&str>) -> String {
    let status = serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut text = status;
    if let Some(reward) = reward {
        text.push_str(&format!(" reward={reward}"));
    }
    if let Some(kind) = error {
        text.push_str(&format!(" ({kind})"));
    }
    text
}

fn build_line(tag: &str, outcome: BuildOutcome, seconds: f64) -> String {
    match outcome {
        BuildOutcome::Built => format!("built {tag} in {seconds:.1}s"),
        BuildOutcome::Cached => format!("image {tag} is up to date"),
        BuildOutcome::Failed => format!("building {tag} failed"),
        BuildOutcome::Cancelled => format!("building {tag} stopped"),
        BuildOutcome::NotNeeded => format!("image {tag} not needed"),
        BuildOutcome::Remote => format!("image {tag} is built by the remote provider"),
    }
}

/// How the progress lines name a provider's engine.
fn engine_name(provider: Provider) -> &'static str {
    provider.engine_name()
}

/// What a provider's environments are called in a count: its own noun where it runs them
/// on this machine (`container`), else with its name (`daytona sandbox`).
fn instances(provider: Provider) -> String {
    if provider.capabilities().runs_here {
        provider.instances_noun().to_string()
    } else {
        format!("{provider} {}", provider.instances_noun())
    }
}

/// The transcript of one trial as `helios run` prints it: what the agent does (text, tool
/// calls and results, turns), its phases and steps, then the lines the progress views
/// print; an event with nothing to say prints nothing.
pub struct Transcript;

impl Reporter for Transcript {
    fn event(&mut self, event: &RunEvent) {
        if let Some(line) = transcript_line(event) {
            println!("{line}");
        }
    }
}

/// One line of [`Transcript`] for an event, if it has one.
pub fn transcript_line(event: &RunEvent) -> Option<String> {
    let short = |text: &str| crate::agent::terminal::truncate_middle(text.trim_end(), 400);
    Some(match event {
        RunEvent::AgentText { text, .. } => format!("text: {}", short(text)),
        RunEvent::ToolCall { name, input, .. } => format!("tool_call: {name} {input}"),
        RunEvent::ToolResult {
            name,
            output,
            is_error,
            images,
            ..
        } => {
            let mut said = short(output);
            for image in images {
                if !said.is_empty() {
                    said.push(' ');
                }
                said.push_str(&format!("[image {image}]"));
            }
            format!(
                "tool_result: {name}{}: {said}",
                if *is_error { " (error)" } else { "" },
            )
        }
        RunEvent::AgentTurn { turn, .. } => format!("turn {turn}"),
        RunEvent::TrialPhase { phase, .. } => format!("phase: {phase}"),
        RunEvent::TrialStep {
            step, number, of, ..
        } => format!("step {step} ({number}/{of})"),
        RunEvent::TrialStarted { label, .. } => format!("started {label}"),
        RunEvent::TrialFinished {
            label,
            status,
            reward,
            error_kind,
            ..
        } => format!(
            "{label}: {}",
            outcome(*status, *reward, error_kind.map(|k| k.as_str()))
        ),
        RunEvent::BuildStarted { tag } => format!("building {tag}"),
        other => return note(other),
    })
}

/// The line both views print for an event, if it has one of its own.
fn note(event: &RunEvent) -> Option<String> {
    Some(match event {
        RunEvent::Started {
            run_dir,
            trials,
            to_run,
            done,
            builds,
        } => format!(
            "apply: {trials} trials ({to_run} to run, {done} already done), {builds} image(s); results in {}",
            run_dir.display()
        ),
        RunEvent::PullFailed { image, tag, error } => format!(
            "cannot pull `{image}` ({error}); building {tag} from the task's Dockerfile instead"
        ),
        RunEvent::Reaped { provider, count } => {
            format!("removed {count} {} left by runs that died", instances(*provider))
        }
        RunEvent::TeardownFailed { label, provider, id, error, .. } => format!(
            "{label}: the {provider} {} `{id}` could not be removed and may still run: {error} (the next `helios apply` or `helios gc` removes it)",
            provider.instance_noun()
        ),
        RunEvent::ReapFailed { provider, error } => format!(
            "warning: could not remove everything runs that died left on {}: {error} (the run goes on; the next apply tries again)",
            engine_name(*provider)
        ),
        RunEvent::EngineStalled { provider, seconds, trials } => format!(
            "{} has not answered for {seconds:.0} s; {trials} trial(s) waiting",
            engine_name(*provider)
        ),
        RunEvent::EngineAnswered { provider, seconds } => format!(
            "{} answers again, after {seconds:.0} s",
            engine_name(*provider)
        ),
        RunEvent::CreateAbandoned { label, provider, .. } => format!(
            "{label}: {} did not answer while making its {}; one may be left, and the next `helios apply` or `helios gc` removes it",
            engine_name(*provider),
            provider.instance_noun()
        ),
        RunEvent::InstallStarted { agents, volume } => {
            format!("checking the install of {} ({volume})", agents.join(", "))
        }
        RunEvent::InstallFinished { agents, volume, installed: true, seconds } => {
            format!("installed {} into {volume} in {seconds:.1}s", agents.join(", "))
        }
        RunEvent::InstallFinished { agents, volume, installed: false, .. } => {
            format!("{} already installed ({volume})", agents.join(", "))
        }
        RunEvent::BuildStarted { tag } => format!("building {tag}"),
        // An image every trial of which is done: nothing to say.
        RunEvent::BuildFinished { outcome: BuildOutcome::NotNeeded, .. } => return None,
        RunEvent::BuildFinished { tag, outcome, seconds } => build_line(tag, *outcome, *seconds),
        RunEvent::StageGated { stage, admitted, tasks } => {
            format!("stage {stage}: the gate admits {admitted} of {tasks} task(s)")
        }
        RunEvent::TrialStarted { label, .. } => format!("started {label}"),
        RunEvent::TrialStep { label, step, number, of, .. } => {
            format!("{label}: step `{step}` ({number}/{of})")
        }
        RunEvent::Resources {
            policy,
            cpus,
            memory_mb,
            builds,
            concurrency,
            pressure_target,
        } => match pressure_target {
            None if *policy == "none" => format!(
                "resources (none): {builds} build(s) and {concurrency} trial(s) at once; only concurrency bounds the trials"
            ),
            Some(target) => format!(
                "resources ({policy}): {cpus} CPU(s) reserved, more while CPU pressure is under {:.0}%; {} of memory, {builds} build(s) and {concurrency} trial(s) at once",
                target * 100.0,
                memory(*memory_mb)
            ),
            None => format!(
                "resources ({policy}): {cpus} CPU(s), {} of memory, {builds} build(s) and {concurrency} trial(s) at once",
                memory(*memory_mb)
            ),
        },
        RunEvent::RunsAlone {
            label,
            cpus,
            memory_mb,
            ..
        } => format!(
            "warning: {label} asks for {cpus} CPU(s) and {} of memory, more than the run's budget: it runs alone",
            memory(*memory_mb)
        ),
        RunEvent::TrialRetry {
            label,
            error,
            wait_seconds,
            ..
        } => format!("retrying {label} in {wait_seconds:.0}s after: {error}"),
        RunEvent::BuildRetry {
            tag,
            error,
            wait_seconds,
        } => format!("building {tag} again in {wait_seconds:.0}s after: {error}"),
        RunEvent::Cancelling => {
            "cancelling: stopping running trials and removing their containers (press Ctrl-C again to force)"
                .to_string()
        }
        _ => return None,
    })
}

#[derive(Default)]
struct Lines {
    to_run: usize,
    finished: usize,
}

impl Lines {
    /// The line an event prints, if any.
    fn line(&mut self, event: &RunEvent) -> Option<String> {
        match event {
            RunEvent::Started { to_run, .. } => {
                self.to_run = *to_run;
                note(event)
            }
            RunEvent::TrialFinished {
                label,
                status,
                reward,
                error_kind,
                ..
            } => {
                self.finished += 1;
                Some(format!(
                    "[{}/{}] {label}: {}",
                    self.finished,
                    self.to_run,
                    outcome(*status, *reward, error_kind.map(|k| k.as_str()))
                ))
            }
            _ => note(event),
        }
    }
}

impl View for Lines {
    fn show(&mut self, event: &RunEvent) {
        if let Some(line) = self.line(event) {
            eprintln!("{line}");
        }
    }
}

#[derive(Default)]
struct Bars {
    multi: Option<MultiProgress>,
    builds: Option<ProgressBar>,
    trials: Option<ProgressBar>,
}

impl Bars {
    fn bar(multi: &MultiProgress, length: u64, prefix: &str) -> ProgressBar {
        let bar = multi.add(ProgressBar::new(length));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>7} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    fn println(&self, line: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

impl View for Bars {
    fn show(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Started { to_run, builds, .. } => {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                eprintln!("{}", note(event).unwrap_or_default());
                self.builds = Some(Self::bar(&multi, *builds as u64, "images"));
                self.trials = Some(Self::bar(&multi, *to_run as u64, "trials"));
                self.multi = Some(multi);
            }
            RunEvent::BuildStarted { tag } => {
                if let Some(bar) = &self.builds {
                    bar.set_message(format!("building {tag}"));
                }
            }
            RunEvent::BuildFinished {
                tag,
                outcome,
                seconds,
            } => {
                if let Some(bar) = &self.builds {
                    bar.inc(1);
                    bar.set_message(build_line(tag, *outcome, *seconds));
                }
                if *outcome == BuildOutcome::Failed {
                    self.println(build_line(tag, *outcome, *seconds));
                }
            }
            RunEvent::TrialStarted { label, .. } => {
                if let Some(bar) = &self.trials {
                    bar.set_message(label.clone());
                }
            }
            RunEvent::TrialFinished {
                label,
                status,
                reward,
                error_kind,
                ..
            } => {
                if let Some(bar) = &self.trials {
                    bar.inc(1);
                }
                if *status != TrialStatus::Completed {
                    self.println(format!(
                        "{label}: {}",
                        outcome(*status, *reward, error_kind.map(|k| k.as_str()))
                    ));
                }
            }
            RunEvent::TrialSkipped {
                reason: SkipReason::GatedOut | SkipReason::Cancelled | SkipReason::OverBudget,
                ..
            } => {
                if let Some(bar) = &self.trials {
                    bar.inc(1);
                }
            }
            RunEvent::WaitingForResources {
                trials,
                builds,
                reason,
            } => {
                if let (Some(bar), true) = (&self.trials, *trials > 0) {
                    let why = reason.map_or("CPUs or memory", |r| r.describe());
                    bar.set_message(format!("{trials} waiting for {why}"));
                }
                if let (Some(bar), true) = (&self.builds, *builds > 0) {
                    bar.set_message(format!("{builds} waiting for a build slot"));
                }
            }
            RunEvent::EngineStalled {
                seconds, trials, ..
            } => {
                if let Some(bar) = &self.trials {
                    bar.set_message(format!(
                        "waiting on the engine for {seconds:.0} s ({trials} trial(s))"
                    ));
                }
                if let Some(line) = note(event) {
                    self.println(line);
                }
            }
            RunEvent::Reaped { .. }
            | RunEvent::TrialStep { .. }
            | RunEvent::PullFailed { .. }
            | RunEvent::ReapFailed { .. }
            | RunEvent::EngineAnswered { .. }
            | RunEvent::CreateAbandoned { .. }
            | RunEvent::InstallStarted { .. }
            | RunEvent::InstallFinished { .. }
            | RunEvent::Resources { .. }
            | RunEvent::RunsAlone { .. }
            | RunEvent::TeardownFailed { .. }
            | RunEvent::TrialRetry { .. }
            | RunEvent::BuildRetry { .. }
            | RunEvent::StageGated { .. }
            | RunEvent::Cancelling => {
                if let Some(line) = note(event) {
                    self.println(line);
                }
            }
            _ => {}
        }
    }

    fn close(&mut self) {
        for bar in [&self.builds, &self.trials].into_iter().flatten() {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::events::{ErrorKind, Phase, TrialIndex};
    use crate::store::summary::Summary;
    use crate::store::trial::{ErrorInfo, RESULT_FORMAT, TrialResult};

    fn finished(
        index: usize,
        label: &str,
        status: TrialStatus,
        reward: Option<f64>,
        error: Option<ErrorKind>,
    ) -> RunEvent {
        RunEvent::TrialFinished {
            index: TrialIndex(index),
            label: label.into(),
            status,
            reward,
            error_kind: error,
        }
    }

    /// A run as the runner reports it: a reaped leftover, a build, a gate, a retry, four
    /// trials ending four ways, a skip, a cancel.
    fn events() -> Vec<RunEvent> {
        vec![
            RunEvent::Started {
                run_dir: PathBuf::from("runs/quickstart"),
                trials: 5,
                to_run: 4,
                done: 1,
                builds: 1,
            },
            RunEvent::Reaped {
                provider: Provider::default(),
                count: 2,
            },
            RunEvent::BuildStarted {
                tag: "helios/hello-file:2319e39b24ad".into(),
            },
            RunEvent::BuildFinished {
                tag: "helios/hello-file:2319e39b24ad".into(),
                outcome: BuildOutcome::Built,
                seconds: 12.5,
            },
            RunEvent::TrialSkipped {
                index: TrialIndex(0),
                reason: SkipReason::Done,
            },
            RunEvent::StageGated {
                stage: "eval".into(),
                admitted: 1,
                tasks: 2,
            },
            RunEvent::TrialStarted {
                index: TrialIndex(1),
                label: "sanity/hello-file/oracle#1".into(),
            },
            RunEvent::TrialPhase {
                index: TrialIndex(1),
                phase: Phase::Agent,
            },
            RunEvent::TrialRetry {
                index: TrialIndex(1),
                label: "sanity/hello-file/oracle#1".into(),
                kind: ErrorKind::ProviderError,
                error: "the Docker engine failed: connection reset".into(),
                wait_seconds: 2.0,
            },
            finished(
                1,
                "sanity/hello-file/oracle#1",
                TrialStatus::Completed,
                Some(1.0),
                None,
            ),
            finished(
                2,
                "sanity/hello-file/nop#1",
                TrialStatus::Completed,
                Some(0.0),
                None,
            ),
            finished(
                3,
                "eval/hello-file/terminal@sonnet#1",
                TrialStatus::TimedOut,
                Some(0.0),
                Some(ErrorKind::AgentTimeout),
            ),
            RunEvent::TeardownFailed {
                index: TrialIndex(3),
                label: "eval/hello-file/terminal@sonnet#1".into(),
                provider: Provider::default(),
                id: "0123abcd".into(),
                error: "the Docker engine failed: conflict".into(),
            },
            RunEvent::EngineStalled {
                provider: Provider::default(),
                seconds: 30.0,
                trials: 2,
            },
            RunEvent::EngineAnswered {
                provider: Provider::default(),
                seconds: 42.0,
            },
            RunEvent::ReapFailed {
                provider: Provider::default(),
                error: "the Docker engine failed: no space left on device".into(),
            },
            RunEvent::Cancelling,
            RunEvent::CreateAbandoned {
                index: TrialIndex(4),
                label: "eval/other/terminal@sonnet#1".into(),
                provider: Provider::default(),
            },
            finished(
                4,
                "eval/other/terminal@sonnet#1",
                TrialStatus::Cancelled,
                None,
                Some(ErrorKind::Cancelled),
            ),
            RunEvent::Finished,
        ]
    }

    #[test]
    fn the_line_reporter_reads_well_for_every_kind_of_event() {
        let mut lines = Lines::default();
        let printed: Vec<String> = events().iter().filter_map(|e| lines.line(e)).collect();
        insta::assert_snapshot!(printed.join("\n"));
    }

    #[test]
    fn the_transcript_has_no_debug_text() {
        for event in events() {
            if let Some(line) = transcript_line(&event) {
                for debug in ["Some(", "None", " { ", "Cached", "Built "] {
                    assert!(!line.contains(debug), "{line:?} has {debug:?}");
                }
            }
        }
        let finished = transcript_line(&RunEvent::TrialFinished {
            index: TrialIndex(0),
            label: "run/hello/terminal@sonnet#1".into(),
            status: TrialStatus::Completed,
            reward: Some(1.0),
            error_kind: None,
        });
        assert_eq!(
            finished.as_deref(),
            Some("run/hello/terminal@sonnet#1: completed reward=1")
        );
        let unused = RunEvent::BuildFinished {
            tag: "helios/unused:0123".into(),
            outcome: BuildOutcome::NotNeeded,
            seconds: 0.0,
        };
        assert_eq!(transcript_line(&unused), None);
        assert_eq!(Lines::default().line(&unused), None);
    }

    fn result(
        stage: &str,
        agent: &str,
        reward: Option<f64>,
        status: TrialStatus,
        error: Option<ErrorKind>,
    ) -> TrialResult {
        TrialResult {
            format: RESULT_FORMAT,
            trial_id: "0123456789abcdef".into(),
            full_id: "0123456789abcdef".into(),
            task: "hello-file".into(),
            stage: stage.into(),
            agent: agent.into(),
            model: (agent == "terminal").then(|| "sonnet".into()),
            params: Default::default(),
            attempt: 1,
            status,
            rewards: Default::default(),
            reward,
            error: error.map(|kind| ErrorInfo::new(kind, "")),
            timings: Vec::new(),
            agent_exit_code: None,
            verifier_exit_code: None,
            usage: None,
            cost_usd: (agent == "terminal").then_some(0.0125),
            image: "helios/hello-file:2319e39b24ad".into(),
            provider: Provider::default(),
            container: None,
            retried: Vec::new(),
            teardown_errors: Vec::new(),
            logs_cut: None,
            tampering_suspected: false,
            tampering: Vec::new(),
            collect: Vec::new(),
            steps: Vec::new(),
            regraded_from: None,
            network: std::collections::BTreeMap::new(),
            warnings: Vec::new(),
            helios_version: "0.1.0".into(),
        }
    }

    /// JUnit lives in `formats`; its fixture (these results) lives here.
    #[test]
    fn junit_failures_follow_the_expectations_when_the_pipeline_has_them() {
        let results = [
            result("sanity", "oracle", Some(1.0), TrialStatus::Completed, None),
            result("sanity", "nop", Some(0.0), TrialStatus::Completed, None),
        ];
        let summary = Summary::of("quickstart", &results.iter().collect::<Vec<_>>());
        let junit = |summary: &Summary| crate::report::formats::junit(summary, &results);
        // Without expectations, nop's reward 0 is a failure.
        assert_eq!(junit(&summary).matches("<failure ").count(), 1);
        // An expectation on oracle only, met: nop is measured, not judged.
        let oracle = crate::manifest::pipeline::Expect {
            agent: Some("oracle".into()),
            min_mean_reward: Some(1.0),
            ..Default::default()
        };
        let decided = summary.clone().checked(std::slice::from_ref(&oracle));
        assert!(decided.expectations_met());
        let xml = junit(&decided);
        assert_eq!(xml.matches("<failure ").count(), 0, "{xml}");
        assert!(xml.contains("failures=\"0\""), "{xml}");
        assert!(xml.contains("<system-out>reward 0"), "{xml}");
        // A bar nop does not meet makes its trial a failure again.
        let nop = crate::manifest::pipeline::Expect {
            agent: Some("nop".into()),
            min_mean_reward: Some(0.5),
            ..Default::default()
        };
        let unmet = summary.checked(&[oracle, nop]);
        assert_eq!(junit(&unmet).matches("<failure ").count(), 1);
    }

    #[test]
    fn the_summary_table_groups_by_stage_agent_and_model() {
        let results = [
            result("sanity", "oracle", Some(1.0), TrialStatus::Completed, None),
            result("sanity", "nop", Some(0.0), TrialStatus::Completed, None),
            result("eval", "terminal", Some(1.0), TrialStatus::Completed, None),
            result(
                "eval",
                "terminal",
                Some(0.0),
                TrialStatus::TimedOut,
                Some(ErrorKind::AgentTimeout),
            ),
            result(
                "eval",
                "terminal",
                None,
                TrialStatus::InfraError,
                Some(ErrorKind::ProviderError),
            ),
        ];
        let summary = Summary::of("quickstart", &results.iter().collect::<Vec<_>>());
        insta::assert_snapshot!(crate::report::table::render(&summary));
    }
}
