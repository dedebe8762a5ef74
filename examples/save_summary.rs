//! Saving results: helios writes result.json, the trajectory and the logs into the run's
//! directory; this adds a summary of its own next to them.
//! `cargo run --example save_summary`

include!("support/common.rs");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = runner_for(
        "tasks/create-hello-file",
        "claude-sonnet-4-20250514",
        "ANTHROPIC_API_KEY",
        "pipelines/scripts/hello-file.yaml",
    )
    .output_dir("results/experiment-1");
    let result = runner.run().await?;
    let summary = serde_json::json!({
        "success": result.success,
        "reward": result.reward,
        "duration": result.duration.as_secs_f64(),
        "steps": result.trajectory.len(),
    });
    let path = result.output_dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    println!("Summary written to {}", path.display());
    Ok(())
}
