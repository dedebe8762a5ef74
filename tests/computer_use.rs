//! The `computer-use` agent on a real desktop (real Docker, real Xvfb): the scripted model
//! answers in each provider's format (Anthropic's computer tool, OpenAI's computer_call,
//! Gemini's computer-use functions) and clicks and types its way through `gui-task`.
//!
//! Both tests run the bundled gui-task, whose image carries the labels of the run that
//! built it: one test's `helios gc --label` would remove it under the other's running
//! container, so they take turns: nextest's `gui-image` test group (.config/nextest.toml);
//! with plain `cargo test`, pass `--test-threads=1`.

mod common;

use std::path::{Path, PathBuf};

use common::project::{Project, copy_tree, text};
use helios::agent::trajectory::Trajectory;

fn trial_dir(project: &Project, stage: &str, prefix: &str) -> PathBuf {
    std::fs::read_dir(project.path(&format!("runs/computer-use/{stage}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no trial {stage}/{prefix}*"))
}

fn pixels(path: &Path) -> image::RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

#[test]
fn the_scripted_model_operates_a_gui_in_each_providers_format() {
    let project = Project::new("computer-use");
    std::fs::create_dir_all(project.path("tasks")).unwrap();
    std::fs::create_dir_all(project.path("pipelines")).unwrap();
    for task in ["gui-task", "explore-desktop"] {
        copy_tree(format!("tasks/{task}"), project.path("tasks"));
    }
    copy_tree("pipelines/scripts", project.path("pipelines"));
    std::fs::copy(
        "pipelines/computer-use.toml",
        project.path("pipelines/computer-use.toml"),
    )
    .unwrap();
    // The copied pipeline writes its results to `../runs`: under the project.
    let out = project.apply("pipelines/computer-use");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    for task in ["gui-task", "explore-desktop"] {
        let dir = trial_dir(&project, "oracle", &format!("{task}__oracle"));
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(result["reward"], 1.0, "{task}: {result}");
        assert!(
            dir.join("desktop/status").is_file(),
            "{task}: the desktop's logs are kept"
        );
    }

    for (model, calls) in [
        ("claude-script", 4),
        ("openai-script", 4),
        ("gemini-script", 3),
    ] {
        let dir = trial_dir(
            &project,
            "computer-use",
            &format!("gui-task__desktop__{model}"),
        );
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(result["status"], "completed", "{model}: {result}");
        assert_eq!(result["reward"], 1.0, "{model}: {result}");

        let trajectory: Trajectory = serde_json::from_str(
            &std::fs::read_to_string(dir.join("agent/trajectory.json")).unwrap(),
        )
        .unwrap();
        let steps = trajectory.tool_steps();
        assert_eq!(steps.len(), calls, "{model}: {steps:?}");
        if model != "claude-script" {
            // Both scripts carry a safety check, which the default policy acknowledges.
            assert!(
                steps
                    .iter()
                    .any(|s| s.tool_output.contains("safety check acknowledged")),
                "{model}: {steps:?}"
            );
        }
        // Every screenshot the agent saw is saved and referenced: the opening screen,
        // then one per call.
        let mut shots: Vec<String> = Vec::new();
        for step in &trajectory.steps {
            for result in step.observation.iter().flat_map(|o| &o.results) {
                shots.extend(result.content.image_paths().iter().map(|p| p.to_string()));
            }
        }
        assert_eq!(shots.len(), calls + 1, "{model}: {shots:?}");
        let images: Vec<image::RgbImage> = shots
            .iter()
            .map(|p| pixels(&dir.join("agent").join(p)))
            .collect();
        for image in &images {
            assert_eq!(image.dimensions(), (1024, 768), "{model}");
        }
        // Real images of the desktop: the form changes as the agent works on it.
        assert_ne!(
            images.first().unwrap().as_raw(),
            images.last().unwrap().as_raw(),
            "{model}: the screen changed between the first and the last screenshot"
        );
        let changed = images
            .windows(2)
            .filter(|pair| pair[0].as_raw() != pair[1].as_raw())
            .count();
        assert!(
            changed >= calls - 1,
            "{model}: most actions changed the screen ({changed} of {calls})"
        );
    }
    project.assert_clean();
}

#[test]
fn helios_run_gives_a_gui_task_to_the_computer_use_agent() {
    let project = Project::new("computer-use-run");
    let out = std::process::Command::new(common::project::BINARY)
        .args(["run", "tasks/gui-task", "--agent", "computer-use"])
        .args([
            "--model",
            "scripted",
            "--script",
            "pipelines/scripts/gui-task-anthropic.yaml",
        ])
        .args(["--label", &project.label, "--output-dir"])
        .arg(project.path("out"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("reward:   1"), "{said}");
    assert!(said.contains("tool_call: computer"), "{said}");
    assert!(
        said.contains("tool_result: computer: [image screenshots/0002.png]"),
        "{said}"
    );
    project.assert_clean();
}
