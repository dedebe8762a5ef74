//! Parallel runs: several tasks at once, each in its own container.
//! `cargo run --example parallel`

include!("support/common.rs");

#[tokio::main]
async fn main() -> Result<(), helios::RunnerError> {
    let runs = [
        (
            "tasks/create-hello-file",
            "pipelines/scripts/hello-file.yaml",
        ),
        (
            "tasks/transform-data",
            "pipelines/scripts/transform-data.yaml",
        ),
    ]
    .map(|(task, script)| {
        let runner = runner_for(
            task,
            "claude-sonnet-4-20250514",
            "ANTHROPIC_API_KEY",
            script,
        )
        .output_dir("output/parallel");
        async move { (task, runner.run().await) }
    });
    for (task, result) in futures_util::future::join_all(runs).await {
        let result = result?;
        println!(
            "{task}: success={} reward={:?}",
            result.success, result.reward
        );
    }
    Ok(())
}
