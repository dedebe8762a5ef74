//! Comparing models on one task. Models whose API key is not set are replaced by the
//! scripted model, so the comparison always runs.
//! `cargo run --example compare_models`

include!("support/common.rs");

#[tokio::main]
async fn main() -> Result<(), helios::RunnerError> {
    let models = [
        ("gemini/gemini-2.5-pro", "GEMINI_API_KEY"),
        ("claude-sonnet-4-20250514", "ANTHROPIC_API_KEY"),
        ("openai/gpt-4.1", "OPENAI_API_KEY"),
    ];
    let mut rewards = Vec::new();
    for (model, key) in models {
        let runner = runner_for(
            "tasks/create-hello-file",
            model,
            key,
            "pipelines/scripts/hello-file.yaml",
        )
        .output_dir(format!("results/{}", model.replace('/', "_")));
        let result = runner.run().await?;
        rewards.push((model, result.reward));
    }
    println!("Results by model:");
    for (model, reward) in rewards {
        println!("  {model}: {reward:?}");
    }
    Ok(())
}
