"""RunResult and RunStatus: what a run on a prompt returns."""
from helios import Agent, Runner
from helios.runner import RunStatus

agent = Agent(name="Assistant", instructions="You are helpful.")
result = Runner.run_sync(agent, "Hello")
# Access result data
print(result.final_output)  # Final response text
print(result.run_id)  # Run identifier
print(result.status)  # RunStatus enum
print(result.turn_count)  # Number of turns
print(result.elapsed_time)  # Execution time
print(result.tool_calls)  # Tool invocations
print(result.metadata)  # Custom metadata

# Possible statuses
for status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPLETED,
               RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT):
    print(status)
