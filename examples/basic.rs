//! Basic run: one task, one model, the result.
//! `cargo run --example basic` (uses Claude if ANTHROPIC_API_KEY is set, else a script).

include!("support/common.rs");

#[tokio::main]
async fn main() -> Result<(), helios::RunnerError> {
    let runner = runner_for(
        "tasks/create-hello-file",
        "claude-sonnet-4-20250514",
        "ANTHROPIC_API_KEY",
        "pipelines/scripts/hello-file.yaml",
    )
    .output_dir("output/basic");
    let result = runner.run().await?;
    println!("Success: {}", result.success);
    println!("Reward: {:?}", result.reward);
    println!("Duration: {:.1}s", result.duration.as_secs_f64());
    for step in &result.trajectory {
        println!(
            "Tool: {}\nInput: {}\nOutput: {}\n---",
            step.tool_name, step.tool_input, step.tool_output
        );
    }
    Ok(())
}
