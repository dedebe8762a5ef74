//! Task sources from git and from registries, end to end through the `helios` binary:
//! real repositories made here, fetched over `file://` and over smart HTTP served by this
//! process (`git http-backend`), a registry served over HTTP, each test with a cache of
//! its own (`HELIOS_CACHE`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use common::git::{GitServer, Repo, git};
use common::project::{BINARY, Project, text};
use serde_json::Value;

/// A scratch directory with a cache of its own.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn cache(&self) -> PathBuf {
        self.root().join("cache")
    }

    /// `p.toml` with one `[[tasks]]` entry made of `source` (its first key on line 6).
    fn pipeline(&self, source: &str) -> PathBuf {
        let path = self.root().join("p.toml");
        std::fs::write(
            &path,
            format!(
                "[pipeline]\nname = \"p\"\noutput_dir = \"runs\"\n\n[[tasks]]\n{source}\n\n\
                 [[stages]]\nname = \"s\"\nagents = [\"oracle\"]\n"
            ),
        )
        .unwrap();
        path
    }

    fn helios(&self, args: &[&str]) -> Output {
        run_helios(self.root(), &self.cache(), args)
    }

    /// The same, off the async runtime that serves HTTP.
    async fn helios_async(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (root, cache) = (self.root().to_path_buf(), self.cache());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_helios(&root, &cache, &args)
        })
        .await
        .unwrap()
    }

    fn lock(&self) -> Value {
        let text = std::fs::read_to_string(self.root().join("runs/p/helios.lock.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

/// `helios ARGS` in `root`, with `cache` as its cache and no user git configuration.
fn run_helios(root: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .current_dir(root)
        .env("HELIOS_CACHE", cache)
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap()
}

fn git_source(url: &str, rev: &str, path: &str) -> String {
    format!("git = \"{url}\"\nrev = \"{rev}\"\npath = \"{path}\"")
}

fn locked_task<'a>(lock: &'a Value, name: &str) -> &'a Value {
    lock["sources"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {lock}"))
}

#[test]
fn a_git_source_over_file_is_resolved_pinned_and_then_read_from_the_cache() {
    let s = Scratch::new();
    let repo = Repo::with_tasks(s.root(), "repo", &["alpha", "beta"]);
    let pipeline = s.pipeline(&git_source(&repo.file_url(), "v1", "tasks/*"));

    let first = s.helios(&["plan", "--write-lock", pipeline.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(3), "{}", text(&first));
    let head = repo.head();
    assert!(
        text(&first).contains(&format!(
            "→ 2 task(s) at {} (1 fetch(es), 2 checked out)",
            &head[..12]
        )),
        "{}",
        text(&first)
    );
    assert!(text(&first).contains("p.toml:5"), "{}", text(&first));

    // The lock file pins the commit and each task's tree id, as git computes them.
    let lock = s.lock();
    assert_eq!(lock["sources"][0]["rev"], "v1");
    for name in ["alpha", "beta"] {
        let task = locked_task(&lock, name);
        assert_eq!(task["commit"], head.as_str());
        assert_eq!(
            task["tree"],
            repo.tree("v1", &format!("tasks/{name}")).as_str()
        );
        assert_eq!(task["path"], format!("tasks/{name}").as_str());
    }

    // The second plan downloads nothing and writes nothing into the cache.
    let second = s.helios(&["plan", pipeline.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(3), "{}", text(&second));
    assert!(text(&second).contains("(cached)"), "{}", text(&second));
    assert!(!text(&second).contains("fetching"), "{}", text(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_fetched_source_is_used_with_the_network_gone() {
    let s = Scratch::new();
    let repo = Repo::with_tasks(s.root(), "repo", &["alpha", "beta"]);
    let server = GitServer::start(s.root()).await;
    let url = server.url("repo.git");
    let by_commit = s.pipeline(&git_source(&url, &repo.head(), "tasks/*"));
    let by_commit = by_commit.to_str().unwrap().to_string();

    let fetched = s.helios_async(&["plan", &by_commit]).await;
    assert_eq!(fetched.status.code(), Some(3), "{}", text(&fetched));
    assert!(
        text(&fetched).contains(&format!("fetching {url}")),
        "{}",
        text(&fetched)
    );
    // A tag, fetched while the server is up.
    let by_tag = s.root().join("tag.toml");
    std::fs::copy(&by_commit, &by_tag).unwrap();
    let by_tag_text = std::fs::read_to_string(&by_tag)
        .unwrap()
        .replace(&repo.head(), "v1");
    std::fs::write(&by_tag, by_tag_text).unwrap();
    let tagged = s.helios_async(&["plan", by_tag.to_str().unwrap()]).await;
    assert_eq!(tagged.status.code(), Some(3), "{}", text(&tagged));

    let served = server.requests.load(Ordering::SeqCst);
    assert!(served > 0);
    server.stop().await;

    // A commit id needs nothing from the network once it is in the cache.
    let offline = s.helios_async(&["plan", &by_commit]).await;
    assert_eq!(offline.status.code(), Some(3), "{}", text(&offline));
    assert!(text(&offline).contains("(cached)"), "{}", text(&offline));
    // A tag cannot be checked against the remote; the last fetched value is used, and said.
    let tag_offline = s.helios_async(&["plan", by_tag.to_str().unwrap()]).await;
    assert_eq!(tag_offline.status.code(), Some(3), "{}", text(&tag_offline));
    assert!(
        text(&tag_offline).contains("is unreachable")
            && text(&tag_offline).contains("as last fetched"),
        "{}",
        text(&tag_offline)
    );

    // With an empty cache, the unreachable host is an error at the `git` line.
    let fresh = Scratch::new();
    let pipeline = fresh.pipeline(&git_source(&url, "v1", "tasks/*"));
    let out = fresh
        .helios_async(&["validate", pipeline.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = text(&out);
    assert!(out.contains(&format!("cannot reach `{url}`")), "{out}");
    assert!(out.contains("p.toml:6:7"), "{out}");
    assert!(
        out.contains("help: check the address and the network"),
        "{out}"
    );
}

fn registry_json(url: &str, commit: &str) -> String {
    serde_json::json!([
        {
            "name": "demo",
            "version": "1.0",
            "description": "Two tasks",
            "tasks": [
                {"name": "alpha", "git_url": url, "git_commit_id": commit, "path": "tasks/alpha"},
                {"name": "beta", "git_url": url, "git_commit_id": commit, "path": "tasks/beta"}
            ]
        },
        {
            "name": "demo",
            "version": "2.0",
            "description": "One task",
            "tasks": [
                {"name": "alpha", "git_url": url, "git_commit_id": commit, "path": "tasks/alpha"}
            ]
        },
        {
            "name": "broken",
            "version": "1.0",
            "description": "A task path that is not there",
            "tasks": [
                {"name": "gone", "git_url": url, "git_commit_id": commit, "path": "tasks/gone"}
            ]
        }
    ])
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_dataset_over_http_resolves_lists_pulls_and_names_its_errors() {
    let s = Scratch::new();
    let repo = Repo::with_tasks(s.root(), "repo", &["alpha", "beta"]);
    let server = GitServer::start(s.root()).await;
    *server.registry.lock().unwrap() = registry_json(&server.url("repo.git"), &repo.head());
    let registry = server.registry_url();
    let dataset = |spec: &str| format!("dataset = \"{spec}\"\nregistry = \"{registry}\"");

    let pipeline = s.pipeline(&dataset("demo@1.0"));
    let p = pipeline.to_str().unwrap().to_string();
    let out = s.helios_async(&["plan", "--write-lock", &p]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("dataset demo@1.0 → 2 task(s)"),
        "{}",
        text(&out)
    );
    let lock = s.lock();
    assert_eq!(
        locked_task(&lock, "beta")["tree"],
        repo.tree("HEAD", "tasks/beta").as_str()
    );

    let list = s
        .helios_async(&["datasets", "list", "--registry", &registry])
        .await;
    assert_eq!(list.status.code(), Some(0), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        listed.contains("demo") && listed.contains("2.0") && listed.contains("Two tasks"),
        "{listed}"
    );

    let pull = s
        .helios_async(&["datasets", "pull", "demo@2.0", "--registry", &registry])
        .await;
    assert_eq!(pull.status.code(), Some(0), "{}", text(&pull));
    assert!(
        text(&pull).contains("dataset demo@2.0 → 1 task(s)"),
        "{}",
        text(&pull)
    );

    // Each error names the `dataset` line, with a hint.
    for (spec, message, hint) in [
        (
            "dmeo@1.0",
            "no dataset `dmeo`",
            "help: did you mean `demo`?",
        ),
        (
            "demo@9.9",
            "dataset `demo` has no version `9.9`",
            "help: expected one of `1.0`, `2.0`",
        ),
        (
            "demo",
            "dataset `demo` has several versions",
            "write `demo@VERSION` with one of `1.0`, `2.0`",
        ),
        (
            "broken@1.0",
            "`tasks/gone` matches no task directory",
            "help: did you mean `tasks/beta`?",
        ),
    ] {
        let pipeline = s.pipeline(&dataset(spec));
        let out = s
            .helios_async(&["validate", pipeline.to_str().unwrap()])
            .await;
        assert_eq!(out.status.code(), Some(1), "{spec}: {}", text(&out));
        let out = text(&out);
        assert!(out.contains(message), "{spec}: {out}");
        assert!(out.contains("p.toml:6:11"), "{spec}: {out}");
        assert!(out.contains(hint), "{spec}: {out}");
    }
    let unknown = s
        .helios_async(&["datasets", "pull", "dmeo@1.0", "--registry", &registry])
        .await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown).contains("did you mean `demo`?"),
        "{}",
        text(&unknown)
    );

    // With the server gone, the registry's cached copy and the cached tasks still work.
    server.stop().await;
    s.pipeline(&dataset("demo@1.0"));
    let offline = s.helios_async(&["plan", &p]).await;
    assert_eq!(offline.status.code(), Some(3), "{}", text(&offline));
    assert!(
        text(&offline).contains("using the copy in the cache"),
        "{}",
        text(&offline)
    );
    assert!(text(&offline).contains("(cached)"), "{}", text(&offline));
    // Only the registry is tried; no repository is fetched.
    let git_fetches = text(&offline).replace(&format!("fetching {registry}"), "");
    assert!(!git_fetches.contains("fetching"), "{git_fetches}");
}

#[test]
fn plan_says_which_tasks_a_moved_tag_changed_and_apply_locked_refuses_it() {
    let s = Scratch::new();
    let repo = Repo::with_tasks(s.root(), "repo", &["alpha", "beta"]);
    let pipeline = s.pipeline(&git_source(&repo.file_url(), "v1", "tasks/*"));
    let p = pipeline.to_str().unwrap();
    let before = repo.head();
    assert_eq!(
        s.helios(&["plan", "--write-lock", p]).status.code(),
        Some(3)
    );

    let after = repo.move_tag("alpha");
    let plan = s.helios(&["plan", p]);
    let out = text(&plan);
    assert!(
        out.contains(&format!(
            "`v1` moved from {} to {}; 1 task(s) changed (`alpha`)",
            &before[..12],
            &after[..12]
        )),
        "{out}"
    );

    let locked = s.helios(&["apply", "--locked", p]);
    assert_eq!(locked.status.code(), Some(1), "{}", text(&locked));
    let out = text(&locked);
    assert!(out.contains("`v1` moved"), "{out}");
    assert!(
        out.contains("the plan has 1 trial(s) the lock file does not"),
        "{out}"
    );
    assert!(out.contains("nothing was run"), "{out}");
    assert!(
        !s.root().join("runs/p/s").exists(),
        "a trial directory was made"
    );
    // The lock file is what it was: `--locked` does not rewrite it.
    assert_eq!(locked_task(&s.lock(), "alpha")["commit"], before.as_str());

    // Without a lock file, `--locked` has nothing to hold to.
    let elsewhere = s.root().join("elsewhere");
    let out = s.helios(&[
        "apply",
        "--locked",
        "--output-dir",
        elsewhere.to_str().unwrap(),
        p,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("has no lock file"), "{}", text(&out));
}

#[test]
fn each_git_source_error_names_its_line_with_a_hint() {
    let s = Scratch::new();
    let repo = Repo::with_tasks(s.root(), "repo", &["alpha", "beta"]);
    let url = repo.file_url();
    let missing = "0123456789abcdef0123456789abcdef01234567";
    for (source, message, place, hint) in [
        (
            git_source(&url, "v2", "tasks/*"),
            "`v2` is not a branch, tag or commit".to_string(),
            "p.toml:7:7",
            "help: the branches and tags are `main`, `v1`",
        ),
        (
            git_source(&url, missing, "tasks/*"),
            format!("commit `{missing}` is not in `{url}`"),
            "p.toml:7:7",
            "give a commit, tag or branch the repository has",
        ),
        (
            git_source(&url, "v1", "taks/*"),
            "`taks/*` matches no task directory".to_string(),
            "p.toml:8:8",
            "tasks/alpha",
        ),
        (
            "path = \"tasks/*\"\nrev = \"v1\"".to_string(),
            "`rev` goes with `git`".to_string(),
            "p.toml:7:1",
            "",
        ),
        (
            format!("git = \"{url}\"\ndataset = \"demo@1.0\""),
            "an entry has `git` or `dataset`, not both".to_string(),
            "p.toml:7:1",
            "help: give each source its own",
        ),
    ] {
        let pipeline = s.pipeline(&source);
        let out = s.helios(&["validate", pipeline.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{source}: {}", text(&out));
        let out = text(&out);
        assert!(out.contains(&message), "{source}: {out}");
        assert!(out.contains(place), "{source}: {out}");
        assert!(out.contains(hint), "{source}: {out}");
    }
}

#[test]
fn a_damaged_cache_entry_is_noticed_and_checked_out_again() {
    let s = Scratch::new();
    let repo = Repo::with_tasks(s.root(), "repo", &["alpha", "beta"]);
    let pipeline = s.pipeline(&git_source(&repo.file_url(), "v1", "tasks/*"));
    let p = pipeline.to_str().unwrap();
    assert_eq!(s.helios(&["plan", p]).status.code(), Some(3));
    let tree = repo.tree("v1", "tasks/alpha");
    let instruction = s.cache().join(format!("tasks/{tree}/alpha/instruction.md"));
    assert_eq!(
        std::fs::read_to_string(&instruction).unwrap(),
        "Task alpha.\n"
    );

    std::fs::write(&instruction, "Tampered.\n").unwrap();
    let out = s.helios(&["plan", p]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("does not match its tree id; checking it out again"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&instruction).unwrap(),
        "Task alpha.\n"
    );

    // `datasets verify` finds the damage, removes the entry, and is clean afterwards.
    std::fs::write(&instruction, "Tampered.\n").unwrap();
    let verify = s.helios(&["datasets", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).contains("damaged, removed"),
        "{}",
        text(&verify)
    );
    assert!(
        text(&verify).contains("1 task checkout(s) and 1 mirror(s) sound"),
        "{}",
        text(&verify)
    );
    let again = s.helios(&["datasets", "verify"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(!instruction.exists());
    // The next use checks it out again, from the mirror, without a fetch.
    let out = s.helios(&["plan", p]);
    assert!(
        text(&out).contains("0 fetch(es), 1 checked out"),
        "{}",
        text(&out)
    );
}

#[test]
fn limit_and_seed_pick_the_same_sample_every_time() {
    let s = Scratch::new();
    let names = ["t0", "t1", "t2", "t3", "t4", "t5"];
    let repo = Repo::with_tasks(s.root(), "repo", &names);
    let source = format!(
        "{}\nlimit = 3\nseed = 7",
        git_source(&repo.file_url(), "v1", "tasks/*")
    );
    let pipeline = s.pipeline(&source);
    let tasks = || -> Vec<String> {
        let out = s.helios(&["plan", "--json", pipeline.to_str().unwrap()]);
        let plan: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
        let mut tasks: Vec<String> = plan["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["task"].as_str().unwrap().to_string())
            .collect();
        tasks.dedup();
        tasks
    };
    let first = tasks();
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(tasks(), first);
}

/// The bundled `pipelines/from-git.toml` reads a task out of this very repository at a
/// pinned commit; it runs in Docker, and a second apply fetches nothing.
#[test]
fn the_bundled_git_pipeline_runs_end_to_end_and_a_second_apply_fetches_nothing() {
    let project = Project::new("from-git");
    let cache = project.path("cache");
    let apply = || {
        Command::new(BINARY)
            .args([
                "apply",
                "--retries",
                "0",
                "--label",
                &project.label,
                "--output-dir",
            ])
            .arg(project.path("runs"))
            .arg("pipelines/from-git.toml")
            .env("HELIOS_CACHE", &cache)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    // A repository cloned shallow may lack the pinned commit; say so rather than fail
    // obscurely.
    let present = Command::new("git")
        .args([
            "cat-file",
            "-e",
            "84380542fc6c5222d8842e8a0f7c0b43c3e9e0d7^{commit}",
        ])
        .status()
        .unwrap();
    assert!(
        present.success(),
        "this clone lacks the commit pipelines/from-git.toml pins (a shallow clone?)"
    );

    let first = apply();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(text(&first).contains("fetching "), "{}", text(&first));
    assert!(text(&first).contains("1 fetch(es)"), "{}", text(&first));
    let mirrors = || std::fs::read_dir(cache.join("git")).unwrap().count();
    assert_eq!(mirrors(), 1);
    let lock: Value = serde_json::from_str(
        &std::fs::read_to_string(project.path("runs/from-git/helios.lock.json")).unwrap(),
    )
    .unwrap();
    let hello = locked_task(&lock, "hello-file");
    assert_eq!(hello["commit"], "84380542fc6c5222d8842e8a0f7c0b43c3e9e0d7");
    let expected_tree = git(
        Path::new("."),
        &[
            "rev-parse",
            "84380542fc6c5222d8842e8a0f7c0b43c3e9e0d7:tasks/hello-file",
        ],
    );
    assert_eq!(hello["tree"], expected_tree.as_str());

    let second = apply();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let out = text(&second);
    assert!(out.contains("(cached)"), "{out}");
    assert!(!out.contains("fetching"), "{out}");
    assert!(out.contains("0 trial(s) ran, 2 already done"), "{out}");
    project.assert_clean();
}
