//! The lock file's content: the resolved plan a run was made from, so it can be audited
//! and resumed. The results store names, writes and reads the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Plan;
use super::shard::Shard;
use crate::dataset::Origin;
use crate::manifest::PipelineSource;
use crate::store::RunStore;

/// The format version of the lock file.
pub const LOCK_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockFile {
    pub format: u32,
    pub helios_version: String,
    pub pipeline: String,
    pub tasks: Vec<LockedTask>,
    pub builds: Vec<LockedBuild>,
    /// The distinct matrix parameter sets; trials refer to them by index.
    pub params: Vec<BTreeMap<String, Value>>,
    pub trials: Vec<LockedTrial>,
    /// The git and dataset sources, pinned: each task's commit and tree id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<LockedSource>,
    /// In a shard's run (`apply --shard I/N`): which part of the plan the run holds. The
    /// rest of the file is the whole plan's, the same in every shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// A git or dataset source as resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedSource {
    /// `git URL @ REV : PATH` or `dataset NAME@VERSION`: the source as the pipeline names it.
    pub source: String,
    /// The branch, tag or commit the pipeline gives (git sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// Every task of the source: its repository, commit, path and tree id (the digest of
    /// its content).
    pub tasks: Vec<LockedSourceTask>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedSourceTask {
    pub name: String,
    #[serde(flatten)]
    pub origin: Origin,
}

impl LockedSource {
    pub fn of(source: &PipelineSource) -> LockedSource {
        LockedSource {
            source: source.resolved.label.clone(),
            rev: source.resolved.rev.clone(),
            tasks: source
                .resolved
                .tasks
                .iter()
                .map(|t| LockedSourceTask {
                    name: t.name.clone(),
                    origin: t.origin.clone(),
                })
                .collect(),
        }
    }

    fn commits(&self) -> BTreeSet<&str> {
        self.tasks
            .iter()
            .map(|t| t.origin.commit.as_str())
            .collect()
    }
}

/// How a source's resolution differs from the lock file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChange {
    pub source: String,
    pub rev: Option<String>,
    /// The commits before and now, when they differ.
    pub commits: Option<(Vec<String>, Vec<String>)>,
    /// Tasks whose tree id differs.
    pub changed: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// A source the lock file does not have.
    pub new_source: bool,
}

impl SourceChange {
    /// One line for people: what moved and which tasks it changed.
    pub fn describe(&self) -> String {
        if self.new_source {
            return format!("source `{}` is not in the lock file", self.source);
        }
        let mut text = format!("source `{}`", self.source);
        if let Some((before, now)) = &self.commits {
            let short = |c: &Vec<String>| {
                c.iter()
                    .map(|c| c[..c.len().min(12)].to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match &self.rev {
                Some(rev) => text.push_str(&format!(
                    ": `{rev}` moved from {} to {}",
                    short(before),
                    short(now)
                )),
                None => text.push_str(&format!(
                    ": commits {} are now {}",
                    short(before),
                    short(now)
                )),
            }
        }
        let list = |what: &str, names: &[String]| {
            (!names.is_empty()).then(|| {
                format!(
                    "{} {what} ({})",
                    names.len(),
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        };
        let parts: Vec<String> = [
            list("task(s) changed", &self.changed),
            list("added", &self.added),
            list("removed", &self.removed),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            text.push_str("; no task's content changed");
        } else {
            text.push_str("; ");
            text.push_str(&parts.join(", "));
        }
        text
    }
}

/// The sources of `now` that differ from those `before` was made from.
pub fn source_changes(before: &[LockedSource], now: &[LockedSource]) -> Vec<SourceChange> {
    let mut out = Vec::new();
    for source in now {
        let Some(old) = before.iter().find(|b| b.source == source.source) else {
            out.push(SourceChange {
                source: source.source.clone(),
                rev: source.rev.clone(),
                commits: None,
                changed: Vec::new(),
                added: Vec::new(),
                removed: Vec::new(),
                new_source: true,
            });
            continue;
        };
        if old == source {
            continue;
        }
        let trees = |s: &LockedSource| -> BTreeMap<String, String> {
            s.tasks
                .iter()
                .map(|t| (t.name.clone(), t.origin.tree.clone()))
                .collect()
        };
        let (was, is) = (trees(old), trees(source));
        let changed = is
            .iter()
            .filter(|(name, tree)| was.get(*name).is_some_and(|t| t != *tree))
            .map(|(name, _)| name.clone())
            .collect();
        let added = is
            .keys()
            .filter(|n| !was.contains_key(*n))
            .cloned()
            .collect();
        let removed = was
            .keys()
            .filter(|n| !is.contains_key(*n))
            .cloned()
            .collect();
        let (c_old, c_new) = (old.commits(), source.commits());
        let commits = (c_old != c_new).then(|| {
            (
                c_old.into_iter().map(str::to_string).collect(),
                c_new.into_iter().map(str::to_string).collect(),
            )
        });
        out.push(SourceChange {
            source: source.source.clone(),
            rev: source.rev.clone(),
            commits,
            changed,
            added,
            removed,
            new_source: false,
        });
    }
    out
}

/// Why a plan is not what its lock file says (`apply --locked`): every difference, or
/// nothing when the plan runs exactly the locked trials from the locked sources.
pub fn locked_mismatches(lock: &LockFile, plan: &LockFile) -> Vec<String> {
    let mut out: Vec<String> = source_changes(&lock.sources, &plan.sources)
        .iter()
        .map(SourceChange::describe)
        .collect();
    for gone in lock
        .sources
        .iter()
        .filter(|s| !plan.sources.iter().any(|p| p.source == s.source))
    {
        out.push(format!(
            "source `{}` of the lock file is not in the pipeline",
            gone.source
        ));
    }
    let locked: BTreeSet<&str> = lock.trials.iter().map(|t| t.id.as_str()).collect();
    let planned: BTreeSet<&str> = plan.trials.iter().map(|t| t.id.as_str()).collect();
    let new = planned.difference(&locked).count();
    let gone = locked.difference(&planned).count();
    if new > 0 || gone > 0 {
        out.push(format!(
            "the plan has {new} trial(s) the lock file does not, and lacks {gone} it has"
        ));
    }
    out
}

/// How the plans of two lock files differ, for `helios merge`: every difference, named
/// (the first file's side first), or nothing when both are one plan. What does not change
/// a trial is left out: where the tasks and build contexts are on each machine, the helios
/// version, and which shard each run holds.
pub fn plan_differences(first: &LockFile, other: &LockFile) -> Vec<String> {
    let mut out = Vec::new();
    if first.pipeline != other.pipeline {
        out.push(format!(
            "the pipeline is `{}` in the first and `{}` in the other",
            first.pipeline, other.pipeline
        ));
    }
    let tasks = |lock: &LockFile| -> BTreeMap<String, (String, String)> {
        lock.tasks
            .iter()
            .map(|t| (t.name.clone(), (t.digest.clone(), t.image.clone())))
            .collect()
    };
    let (a, b) = (tasks(first), tasks(other));
    for (name, (digest, image)) in &a {
        match b.get(name) {
            None => out.push(format!("task `{name}` is only in the first")),
            Some((d, _)) if d != digest => out.push(format!(
                "task `{name}` differs: its content digest is {} in the first and {} in the other",
                &digest[..digest.len().min(12)],
                &d[..d.len().min(12)]
            )),
            Some((_, i)) if i != image => out.push(format!(
                "task `{name}` runs in `{image}` in the first and `{i}` in the other"
            )),
            Some(_) => {}
        }
    }
    for name in b.keys().filter(|n| !a.contains_key(*n)) {
        out.push(format!("task `{name}` is only in the other"));
    }
    if first.params != other.params {
        out.push("the matrix parameter sets differ".to_string());
    }
    out.extend(
        source_changes(&first.sources, &other.sources)
            .iter()
            .map(SourceChange::describe),
    );
    let label = |t: &LockedTrial| {
        let mut label = format!("{}/{}/{}", t.stage, t.task, t.agent);
        if let Some(model) = &t.model {
            label.push('/');
            label.push_str(model);
        }
        if t.params != 0 {
            label.push_str(&format!("/params-{}", t.params));
        }
        format!("`{label}#{}`", t.attempt)
    };
    let ids = |lock: &LockFile| -> BTreeSet<String> {
        lock.trials.iter().map(|t| t.id.clone()).collect()
    };
    let (a, b) = (ids(first), ids(other));
    let only = |lock: &LockFile, theirs: &BTreeSet<String>| -> Vec<String> {
        lock.trials
            .iter()
            .filter(|t| !theirs.contains(&t.id))
            .map(label)
            .collect()
    };
    let (only_first, only_other) = (only(first, &b), only(other, &a));
    // A trial whose inputs changed keeps its place (stage, task, agent, attempt) under a
    // new id: said as changed, not as one gone and one new.
    let changed: Vec<String> = only_first
        .iter()
        .filter(|l| only_other.contains(l))
        .cloned()
        .collect();
    let some = |names: &[String]| {
        let mut text = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        if names.len() > 3 {
            text.push_str(", …");
        }
        text
    };
    let rest = |names: Vec<String>| -> Vec<String> {
        names.into_iter().filter(|l| !changed.contains(l)).collect()
    };
    let (gone, new) = (rest(only_first), rest(only_other));
    if !changed.is_empty() {
        out.push(format!(
            "{} trial(s) have other ids, their inputs differing ({})",
            changed.len(),
            some(&changed)
        ));
    }
    if !gone.is_empty() {
        out.push(format!(
            "{} trial(s) are only in the first ({})",
            gone.len(),
            some(&gone)
        ));
    }
    if !new.is_empty() {
        out.push(format!(
            "{} trial(s) are only in the other ({})",
            new.len(),
            some(&new)
        ));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedTask {
    pub name: String,
    pub dir: PathBuf,
    /// SHA-256 of the task directory's files (see `docs/plan.md`).
    pub digest: String,
    /// The image tag it runs in.
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedBuild {
    pub tag: String,
    pub digest: String,
    pub context: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedTrial {
    /// The full SHA-256 trial id; results use its first 16 characters.
    pub id: String,
    pub stage: String,
    pub task: String,
    pub agent: String,
    pub model: Option<String>,
    pub params: u32,
    pub attempt: u32,
    /// The trial's directory, relative to the run directory.
    pub dir: PathBuf,
}

impl LockFile {
    /// The lock file of `plan`; for a shard's plan, the whole plan's, naming the shard.
    pub fn of(plan: &Plan) -> LockFile {
        if let Some(sharded) = &plan.shard {
            return (*sharded.lock).clone();
        }
        LockFile {
            format: LOCK_FORMAT,
            helios_version: env!("CARGO_PKG_VERSION").to_string(),
            pipeline: plan.pipeline.clone(),
            tasks: plan
                .tasks
                .iter()
                .map(|t| LockedTask {
                    name: t.name.clone(),
                    dir: t.dir.clone(),
                    digest: t.digest.hex(),
                    image: t.image.name(&plan.builds).to_string(),
                })
                .collect(),
            builds: plan
                .builds
                .iter()
                .map(|b| LockedBuild {
                    tag: b.tag.clone(),
                    digest: b.digest.hex(),
                    context: b.context.clone(),
                })
                .collect(),
            params: plan.params.clone(),
            trials: plan
                .trials
                .iter()
                .map(|t| LockedTrial {
                    id: t.id.0.hex(),
                    stage: plan.stages[t.stage as usize].name.clone(),
                    task: plan.tasks[t.task as usize].name.clone(),
                    agent: plan.agents[t.agent as usize].name.clone(),
                    model: plan.model_name(t).map(str::to_string),
                    params: t.params,
                    attempt: t.attempt,
                    dir: plan.trial_dir(t),
                })
                .collect(),
            sources: plan.sources.clone(),
            shard: None,
        }
    }

    /// Writes the lock file into `run_dir` atomically and returns its path.
    pub fn write(&self, run_dir: &Path) -> std::io::Result<PathBuf> {
        RunStore::new(run_dir).write_lock(self)
    }

    /// Reads the lock file of `run_dir`, if there is one.
    pub fn read(run_dir: &Path) -> std::io::Result<Option<LockFile>> {
        RunStore::new(run_dir).read_lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(commit: &str, trees: &[(&str, &str)]) -> LockedSource {
        LockedSource {
            source: "git u @ v1 : tasks/*".into(),
            rev: Some("v1".into()),
            tasks: trees
                .iter()
                .map(|(name, tree)| LockedSourceTask {
                    name: name.to_string(),
                    origin: Origin {
                        url: "u".into(),
                        commit: commit.into(),
                        path: format!("tasks/{name}"),
                        tree: tree.to_string(),
                    },
                })
                .collect(),
        }
    }

    fn lock(tasks: &[(&str, &str)], trials: &[(&str, &str)]) -> LockFile {
        LockFile {
            format: LOCK_FORMAT,
            helios_version: "1".into(),
            pipeline: "p".into(),
            tasks: tasks
                .iter()
                .map(|(name, digest)| LockedTask {
                    name: name.to_string(),
                    dir: PathBuf::from(format!("/here/{name}")),
                    digest: digest.to_string(),
                    image: format!("helios/{name}:x"),
                })
                .collect(),
            builds: Vec::new(),
            params: vec![BTreeMap::new()],
            trials: trials
                .iter()
                .map(|(id, task)| LockedTrial {
                    id: id.to_string(),
                    stage: "s".into(),
                    task: task.to_string(),
                    agent: "oracle".into(),
                    model: None,
                    params: 0,
                    attempt: 1,
                    dir: PathBuf::from(format!("s/{task}")),
                })
                .collect(),
            sources: Vec::new(),
            shard: None,
        }
    }

    #[test]
    fn plans_differ_by_what_changes_trials_not_by_paths_versions_or_shards() {
        let first = lock(&[("a", "aaaa"), ("b", "bbbb")], &[("1", "a"), ("2", "b")]);
        let mut elsewhere = first.clone();
        elsewhere.tasks[0].dir = PathBuf::from("/there/a");
        elsewhere.helios_version = "2".into();
        elsewhere.shard = Some(Shard { index: 2, count: 3 });
        assert_eq!(plan_differences(&first, &elsewhere), Vec::<String>::new());

        let edited = lock(&[("a", "aaaa"), ("b", "cccc")], &[("1", "a"), ("3", "b")]);
        assert_eq!(
            plan_differences(&first, &edited),
            vec![
                "task `b` differs: its content digest is bbbb in the first and cccc in the other",
                "1 trial(s) have other ids, their inputs differing (`s/b/oracle#1`)",
            ]
        );
        let grown = lock(
            &[("a", "aaaa"), ("b", "bbbb"), ("c", "cccc")],
            &[("1", "a"), ("2", "b")],
        );
        assert_eq!(
            plan_differences(&first, &grown),
            vec!["task `c` is only in the other"]
        );
        let more = lock(
            &[("a", "aaaa"), ("b", "bbbb")],
            &[("1", "a"), ("2", "b"), ("4", "c")],
        );
        assert_eq!(
            plan_differences(&first, &more),
            vec!["1 trial(s) are only in the other (`s/c/oracle#1`)"]
        );
    }

    #[test]
    fn a_moved_rev_names_the_tasks_it_changed_added_and_removed() {
        let before = [source("aaaa", &[("a", "1"), ("b", "2"), ("c", "3")])];
        let now = [source("bbbb", &[("a", "1"), ("b", "9"), ("d", "4")])];
        let changes = source_changes(&before, &now);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].changed, vec!["b"]);
        assert_eq!(changes[0].added, vec!["d"]);
        assert_eq!(changes[0].removed, vec!["c"]);
        assert_eq!(
            changes[0].describe(),
            "source `git u @ v1 : tasks/*`: `v1` moved from aaaa to bbbb; 1 task(s) changed (`b`), 1 added (`d`), 1 removed (`c`)"
        );
        assert!(source_changes(&now, &now).is_empty());
    }
}
