//! Every bundled task under `tasks/` and pipeline under `pipelines/` must be valid, with no
//! warning: they are what users copy first.

use std::path::PathBuf;

use helios::diagnostic::render;
use helios::manifest::validate_paths;

fn entries(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn every_bundled_task_is_valid() {
    let tasks: Vec<PathBuf> = entries("tasks")
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    assert!(!tasks.is_empty());
    let validation = validate_paths(&tasks);
    assert!(
        validation.report.diagnostics.is_empty(),
        "{}",
        render::human(&validation.report, false)
    );
}

#[test]
fn every_bundled_pipeline_is_valid() {
    let pipelines: Vec<PathBuf> = entries("pipelines")
        .into_iter()
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "toml" || e == "yaml" || e == "yml")
        })
        .collect();
    assert!(!pipelines.is_empty());
    let validation = validate_paths(&pipelines);
    assert!(
        validation.report.diagnostics.is_empty(),
        "{}",
        render::human(&validation.report, false)
    );
}

#[test]
fn loading_the_quickstart_gives_typed_values() {
    let loaded = helios::load_pipeline("pipelines/quickstart.toml".as_ref()).unwrap();
    let pipeline = loaded.value;
    assert_eq!(pipeline.manifest.pipeline.name, "quickstart");
    assert!(pipeline.tasks.iter().any(|t| t.name == "create-hello-file"));
    let hello = pipeline
        .tasks
        .iter()
        .find(|t| t.name == "create-hello-file")
        .unwrap();
    assert_eq!(hello.manifest.environment.workdir.as_deref(), Some("/app"));
    assert_eq!(hello.dir, PathBuf::from("tasks/create-hello-file"));
}
