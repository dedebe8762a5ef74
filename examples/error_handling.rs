//! Error handling: a run that could not start is an `Err`; a run that ended badly is a
//! result with a status and an error.
//! `cargo run --example error_handling`

include!("support/common.rs");

use helios::{RunStatus, RunnerError};

#[tokio::main]
async fn main() {
    // A task directory that does not exist: the runner says what is wrong, and where.
    match helios::AgentRunner::new("tasks/no-such-task").run().await {
        Err(RunnerError::InvalidTask(e)) => println!("Invalid task:\n{e}"),
        other => println!("Unexpected: {other:?}"),
    }
    // A real run: check the status, then the reward.
    let runner = runner_for(
        "tasks/create-hello-file",
        "gpt-4.1",
        "OPENAI_API_KEY",
        "pipelines/scripts/hello-file.yaml",
    )
    .output_dir("output/error-handling");
    match runner.run().await {
        Ok(result) if result.success => println!("Task completed successfully"),
        Ok(result) => {
            println!(
                "Task failed with reward {:?} ({:?})",
                result.reward, result.status
            );
            if let Some(error) = &result.error {
                println!("Error: {} ({})", error.message, error.kind);
            }
            if result.status == RunStatus::TimedOut {
                println!("It ran out of time; try a larger max_time.");
            }
        }
        Err(e) => println!("Execution error: {e}"),
    }
}
