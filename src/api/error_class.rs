//! Which part of a run a problem that stopped it belongs to: the one classification of the
//! library's errors that front ends map to their own vocabulary (Python's exception
//! classes), so none of them compares messages or guesses from the environment.

use super::RunnerError;
use super::session::{LockProblem, SessionError};
use crate::runner::{Problem, ProblemKind, Problems, RunError};

/// The part of a run a problem belongs to.
///
/// A time limit is not among them: it ends a trial with a result (`timed_out`), not with
/// an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The task or pipeline: invalid, missing, not plannable, not what its lock file says.
    Task,
    /// Where the run goes on: an unknown provider, an engine that does not answer, missing
    /// or refused credentials, an image that does not build.
    Environment,
    /// The agent: unknown, without the model it needs, a model key that is not set, a
    /// prompt that does not render.
    Agent,
    /// helios itself or this machine: results that cannot be written, a viewer that cannot
    /// start, a run that ended without a result.
    Helios,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Task => "task",
            ErrorClass::Environment => "environment",
            ErrorClass::Agent => "agent",
            ErrorClass::Helios => "helios",
        }
    }
}

/// An error that stops a run, by the part of the run it belongs to.
pub trait Classify {
    fn class(&self) -> ErrorClass;

    /// The typed problems behind the error, when it is a run's pre-flight check (each with
    /// its kind, task, agent and fix); none for other errors.
    fn problems(&self) -> &[Problem] {
        &[]
    }
}

impl Classify for RunError {
    fn class(&self) -> ErrorClass {
        match self {
            RunError::Preflight(problems) => problems.class(),
            RunError::Credentials(_) | RunError::Env(_) => ErrorClass::Environment,
            RunError::Write { .. } => ErrorClass::Helios,
        }
    }

    fn problems(&self) -> &[Problem] {
        match self {
            RunError::Preflight(problems) | RunError::Credentials(problems) => &problems.0,
            RunError::Env(_) | RunError::Write { .. } => &[],
        }
    }
}

impl Classify for Problem {
    fn class(&self) -> ErrorClass {
        match self.kind {
            ProblemKind::MissingCredentials
            | ProblemKind::UnsupportedByProvider
            | ProblemKind::NoEngine => ErrorClass::Environment,
            ProblemKind::UnsupportedTask | ProblemKind::Regrade => ErrorClass::Task,
            // An instruction or a Dockerfile is the task's; a prompt template the agent's.
            ProblemKind::UnreadableFile if self.task.is_some() => ErrorClass::Task,
            ProblemKind::UnreadableFile
            | ProblemKind::MissingModelKey
            | ProblemKind::Model
            | ProblemKind::UnsetVariable
            | ProblemKind::AgentUnfit
            | ProblemKind::TemplateDoesNotRender => ErrorClass::Agent,
        }
    }
}

/// The class all the problems share; problems of several classes (or none) are the
/// agent's, the checks before a run that are no provider's or task's alone.
impl Classify for Problems {
    fn class(&self) -> ErrorClass {
        let mut classes = self.iter().map(Classify::class);
        match classes.next() {
            Some(first) if classes.all(|c| c == first) => first,
            _ => ErrorClass::Agent,
        }
    }
}

impl Classify for RunnerError {
    fn class(&self) -> ErrorClass {
        match self {
            RunnerError::InvalidTask(_) | RunnerError::Plan(_) | RunnerError::Sandbox(_) => {
                ErrorClass::Task
            }
            RunnerError::UnknownProvider(_) => ErrorClass::Environment,
            RunnerError::UnknownAgent(_)
            | RunnerError::NeedsModel(_)
            | RunnerError::NeedsCommand => ErrorClass::Agent,
            RunnerError::Run(error) => error.class(),
            #[cfg(feature = "viewer")]
            RunnerError::Viewer(_) => ErrorClass::Helios,
            RunnerError::NoViewer | RunnerError::NoResult => ErrorClass::Helios,
        }
    }

    fn problems(&self) -> &[Problem] {
        match self {
            RunnerError::Run(error) => error.problems(),
            _ => &[],
        }
    }
}

impl Classify for SessionError {
    fn class(&self) -> ErrorClass {
        match self {
            SessionError::Invalid(_) | SessionError::Plan(_) => ErrorClass::Task,
        }
    }
}

impl Classify for LockProblem {
    fn class(&self) -> ErrorClass {
        match self {
            LockProblem::Missing(_) | LockProblem::Unreadable { .. } | LockProblem::Differs(_) => {
                ErrorClass::Task
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_error_is_classed_by_its_kind_wherever_it_is_wrapped() {
        let unreachable = RunError::Env(crate::env::fake::unreachable_error("no socket"));
        assert_eq!(unreachable.class(), ErrorClass::Environment);
        let wrapped = RunnerError::Run(RunError::Env(crate::env::fake::unreachable_error("no")));
        assert_eq!(wrapped.class(), ErrorClass::Environment);
        assert_eq!(
            RunError::Credentials(Problems::one(Problem::new(
                ProblemKind::MissingCredentials,
                "DAYTONA_API_KEY is not set"
            )))
            .class(),
            ErrorClass::Environment
        );
        let write = RunError::Write {
            path: "runs/p/summary.json".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(write.class(), ErrorClass::Helios);
    }

    #[test]
    fn pre_flight_problems_are_classed_by_their_kinds() {
        let problem = |kind| Problem::new(kind, "…");
        let of = |problems: Vec<Problem>| RunError::Preflight(Problems::of(problems)).class();
        assert_eq!(
            of(vec![problem(ProblemKind::MissingModelKey)]),
            ErrorClass::Agent
        );
        assert_eq!(
            of(vec![problem(ProblemKind::UnsupportedByProvider)]),
            ErrorClass::Environment
        );
        assert_eq!(
            of(vec![problem(ProblemKind::UnreadableFile).task("t")]),
            ErrorClass::Task
        );
        assert_eq!(
            of(vec![
                problem(ProblemKind::UnsupportedTask),
                problem(ProblemKind::MissingCredentials)
            ]),
            ErrorClass::Agent
        );
    }

    #[test]
    fn runner_errors_name_the_task_the_agent_or_the_environment() {
        assert_eq!(
            RunnerError::UnknownAgent("gpt".into()).class(),
            ErrorClass::Agent
        );
        assert_eq!(
            RunnerError::NeedsModel("terminal".into()).class(),
            ErrorClass::Agent
        );
        assert_eq!(
            RunnerError::UnknownProvider("kubernetes".into()).class(),
            ErrorClass::Environment
        );
        assert_eq!(
            RunnerError::Sandbox("read-only".into()).class(),
            ErrorClass::Task
        );
        assert_eq!(RunnerError::NoResult.class(), ErrorClass::Helios);
        assert_eq!(
            LockProblem::Missing("runs/p".into()).class(),
            ErrorClass::Task
        );
    }
}
