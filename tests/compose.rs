//! Compose environments end to end in Docker: `main` reaching a sidecar that becomes
//! healthy late, collect hooks and artifacts on a sidecar, named volumes and bind mounts,
//! and a Ctrl-C during a Compose trial that leaves no container, network or volume behind.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::project::{Project, copy_tree, docker_ids, text};

const FIXTURES: &str = "tests/fixtures/harbor";

fn with_fixtures(name: &str, tasks: &[&str]) -> Project {
    let project = Project::new(name);
    std::fs::create_dir_all(project.path("tasks")).unwrap();
    for task in tasks {
        copy_tree(format!("{FIXTURES}/{task}"), project.path("tasks"));
    }
    project
}

/// The networks (`network`) or volumes (`volume`) carrying `label`.
fn listed(kind: &str, label: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([kind, "ls", "-q", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn networks(label: &str) -> Vec<String> {
    listed("network", label)
}

fn volumes(label: &str) -> Vec<String> {
    listed("volume", label)
}

#[test]
fn compose_tasks_pass_with_oracle_and_fail_with_nop() {
    let project = with_fixtures(
        "compose",
        &[
            "compose-http-sidecar",
            "compose-sidecar-artifacts",
            "compose-volumes",
        ],
    );
    project.pipeline("p", "\"oracle\", \"nop\"");
    let plan = std::process::Command::new(env!("CARGO_BIN_EXE_helios"))
        .arg("plan")
        .arg(project.path("p.toml"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let listed = text(&plan);
    assert!(listed.contains("compose-http-sidecar-api"), "{listed}");

    let out = project.apply("p");
    let results = project.results("p");
    assert_eq!(out.status.code(), Some(0), "{}\n{results:#?}", text(&out));
    for task in [
        "compose-http-sidecar",
        "compose-sidecar-artifacts",
        "compose-volumes",
    ] {
        let oracle = &results[&format!("{task}/oracle")];
        assert_eq!(oracle["reward"], 1.0, "{task} with oracle: {oracle}");
        assert_eq!(results[&format!("{task}/nop")]["reward"], 0.0, "{task}");
    }

    // The sidecar's artifacts and the hook's output, copied from its container.
    let dir = project.trial_dir("p", "compose-sidecar-artifacts", "oracle");
    let orders = std::fs::read_to_string(dir.join("artifacts/var/log/api/orders.log")).unwrap();
    assert_eq!(orders, "order 1\norder 2\n");
    let stats = std::fs::read_to_string(dir.join("artifacts/stats.txt")).unwrap();
    assert_eq!(stats.trim(), "2");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("artifacts/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest[0]["service"], "api");
    assert_eq!(manifest[0]["status"], "ok");
    assert_eq!(manifest[1]["status"], "ok");

    // The sidecar wrote into the trial's artifacts directory through its bind mount.
    let dir = project.trial_dir("p", "compose-volumes", "oracle");
    let written = std::fs::read_to_string(dir.join("artifacts/sidecar.txt")).unwrap();
    assert_eq!(written, "written by the sidecar\n");

    assert_eq!(
        networks(&project.label),
        Vec::<String>::new(),
        "networks left"
    );
    assert_eq!(
        volumes(&project.label),
        Vec::<String>::new(),
        "volumes left"
    );
    project.assert_clean();
}

#[test]
fn an_unsupported_compose_key_is_said_at_validate_with_its_line_and_refused_by_apply() {
    let project = with_fixtures("compose-validate", &["compose-http-sidecar"]);
    let file = project.path("tasks/compose-http-sidecar/environment/docker-compose.yaml");
    let text_before = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text_before.replace(
            "    build: ./api\n",
            "    build: ./api\n    privileged: true\n",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(["validate"])
        .arg(project.path("tasks/compose-http-sidecar"))
        .output()
        .unwrap();
    let shown = text(&out);
    // Valid, as Harbor's loader has it; said at its line, an error with `--strict`.
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("`privileged`"), "{shown}");
    assert!(shown.contains("docker-compose.yaml:13"), "{shown}");
    assert!(shown.contains("not published"), "{shown}");
    let strict = std::process::Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(["validate", "--strict"])
        .arg(project.path("tasks/compose-http-sidecar"))
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    project.pipeline("p", "\"oracle\"");
    let applied = project.apply("p");
    let said = text(&applied);
    assert_eq!(applied.status.code(), Some(1), "{said}");
    assert!(said.contains("`privileged`"), "{said}");
    project.assert_clean();
}

#[test]
fn ctrl_c_during_a_compose_trial_leaves_no_container_network_or_volume() {
    let project = with_fixtures("compose-interrupt", &["compose-http-sidecar"]);
    let solve = project.path("tasks/compose-http-sidecar/solution/solve.sh");
    let script = std::fs::read_to_string(&solve).unwrap();
    std::fs::write(
        &solve,
        format!("if [ \"$BLOCK\" = 1 ]; then sleep 300; fi\n{script}"),
    )
    .unwrap();
    let toml = project.path("tasks/compose-http-sidecar/task.toml");
    let manifest = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        manifest.replace(
            "GREETING = \"hello\"",
            "GREETING = \"hello\"\nBLOCK = \"${BLOCK:-0}\"",
        ),
    )
    .unwrap();
    // A named volume too: it goes with the trial.
    let compose = project.path("tasks/compose-http-sidecar/environment/docker-compose.yaml");
    let file = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(
        &compose,
        format!(
            "{}\nvolumes:\n  scratch:\n",
            file.replace(
                "  main:\n",
                "  main:\n    volumes: [\"scratch:/scratch\"]\n"
            )
        ),
    )
    .unwrap();
    // Images of their own: `assert_clean` removes what this project built, and the other
    // test builds the same fixture.
    for dockerfile in ["environment/Dockerfile", "environment/api/Dockerfile"] {
        let path = project.path(&format!("tasks/compose-http-sidecar/{dockerfile}"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}LABEL variant=interrupt\n")).unwrap();
    }
    project.pipeline("p", "\"oracle\"");
    let mut child = project
        .command("p")
        .env("BLOCK", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Poll until both services are up (the agent runs only once main started).
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("started s/compose-http-sidecar/oracle#1") {
            break;
        }
    }
    let up = std::time::Instant::now();
    while docker_ids("ps", &project.label).len() < 2 {
        assert!(
            up.elapsed().as_secs() < 120,
            "services never came up: {seen:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:?} {rest:?}");
    assert_eq!(docker_ids("ps", &project.label), Vec::<String>::new());
    assert_eq!(networks(&project.label), Vec::<String>::new(), "{rest:?}");
    assert_eq!(volumes(&project.label), Vec::<String>::new(), "{rest:?}");

    // The next apply (no longer blocked) finishes it.
    let out = project.apply("p");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        project.results("p")["compose-http-sidecar/oracle"]["reward"],
        1.0
    );
    project.assert_clean();
}
