//! Pre-flight problems: what stops a run before any trial starts, each typed by its kind,
//! with the task and the agent it concerns and how to fix it, so that front ends can group,
//! count or serialize them rather than parse sentences.

use std::fmt;

use serde::Serialize;

/// What kind of problem stops the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A provider the plan uses has no credentials on this host, or refused them.
    MissingCredentials,
    /// A model's API key variable is unset.
    MissingModelKey,
    /// A model cannot be made otherwise (an id helios does not know, a broken script).
    Model,
    /// A `${VAR}` the manifests use is unset on this host and has no default.
    UnsetVariable,
    /// A file the run needs (a prompt template, an instruction, a Dockerfile) cannot be
    /// read.
    UnreadableFile,
    /// A provider that runs the trial cannot do what the task or agent asks (a capability
    /// it lacks: Compose, installed agents, the gateway, users, network changes, …).
    UnsupportedByProvider,
    /// The task asks for something helios refuses (a setting it does not honour, a
    /// Compose file it cannot run).
    UnsupportedTask,
    /// The agent cannot run on this task or model (a computer-use agent without a desktop
    /// or a computer tool).
    AgentUnfit,
    /// A prompt template, or an installed agent's install or run template, does not
    /// render for the trial.
    TemplateDoesNotRender,
    /// The caller gave no engine for a provider the plan uses.
    NoEngine,
    /// What `regrade` needs is not there (not a run directory, an output that would
    /// overwrite its input).
    Regrade,
}

/// One reason the run cannot start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The task it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The agent (its name in the pipeline) it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// What is wrong, as a sentence that names the task and agent itself.
    pub message: String,
    /// How to fix it, when there is a known way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Problem {
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            task: None,
            agent: None,
            message: message.into(),
            fix: None,
        }
    }

    pub fn task(mut self, task: impl Into<String>) -> Problem {
        self.task = Some(task.into());
        self
    }

    pub fn agent(mut self, agent: impl Into<String>) -> Problem {
        self.agent = Some(agent.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Problem {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match &self.fix {
            Some(fix) => write!(f, " (hint: {fix})"),
            None => Ok(()),
        }
    }
}

/// Every problem found before a run, sorted by message and without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// `problems` sorted (so the same run always says them in the same order) and
    /// deduplicated (many trials share one task's problem).
    pub fn of(mut problems: Vec<Problem>) -> Problems {
        problems.sort_by(|a, b| {
            (&a.message, &a.fix, &a.task, &a.agent, a.kind)
                .cmp(&(&b.message, &b.fix, &b.task, &b.agent, b.kind))
        });
        problems.dedup();
        Problems(problems)
    }

    pub fn one(problem: Problem) -> Problems {
        Problems(vec![problem])
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A bullet list, a problem's fix on a `hint:` line of its own under it.
impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {}", problem.message)?;
            if let Some(fix) = &problem.fix {
                write!(f, "\n    hint: {fix}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_listed_sorted_once_each_with_their_fix_under_them() {
        let installed = Problem::new(
            ProblemKind::UnsupportedByProvider,
            "agent `cc` is an installed agent, which Daytona cannot run",
        )
        .agent("cc")
        .fix("run its trials with Docker");
        let unset =
            Problem::new(ProblemKind::UnsetVariable, "agent `cc` env `KEY`: unset").agent("cc");
        let problems = Problems::of(vec![installed.clone(), unset.clone(), unset.clone()]);
        assert_eq!(problems.0, [unset, installed]);
        assert_eq!(
            problems.to_string(),
            "  - agent `cc` env `KEY`: unset\n  - agent `cc` is an installed agent, which \
             Daytona cannot run\n    hint: run its trials with Docker"
        );
    }

    #[test]
    fn problems_serialize_with_their_kind_task_agent_and_fix() {
        let problem = Problem::new(ProblemKind::AgentUnfit, "task `t` has no desktop")
            .task("t")
            .agent("cu")
            .fix("add `[environment.desktop]`");
        assert_eq!(
            serde_json::to_value(Problems::one(problem)).unwrap(),
            serde_json::json!([{
                "kind": "agent_unfit",
                "task": "t",
                "agent": "cu",
                "message": "task `t` has no desktop",
                "fix": "add `[environment.desktop]`",
            }])
        );
    }
}
