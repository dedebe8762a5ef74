"""RunConfig: limits, tracing, a run id of your own and metadata kept with the result."""
from helios import Agent, Runner
from helios.runner import RunConfig

agent = Agent(name="Assistant", instructions="You are helpful.")
config = RunConfig(
    max_turns=10,  # Maximum iterations
    max_time=300.0,  # Timeout in seconds
    timeout_per_turn=60.0,  # Per-turn timeout
    stop_on_tool_error=False,
    verbose=True,  # Debug output
    trace_enabled=True,  # Enable tracing
    run_id="custom-id",  # Custom run ID
    metadata={  # Custom metadata
        "user_id": "123",
        "session": "abc"
    }
)
result = Runner.run_sync(agent, "Hello", config=config)
print(result.run_id, result.status, result.metadata)
