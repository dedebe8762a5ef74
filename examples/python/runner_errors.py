"""Error handling: a failed run has status FAILED and an error; a time limit raises
helios.TimeoutError; an agent that cannot run (say, its model's key is not set) raises
helios.AgentError."""
from helios import Agent, Runner
from helios.runner import RunStatus
from helios.errors import AgentError, TimeoutError

agent = Agent(name="Assistant", instructions="Be helpful")

try:
    result = Runner.run_sync(agent, "Hello")
    if result.status == RunStatus.FAILED:
        print(f"Failed: {result.error}")
    elif result.status == RunStatus.COMPLETED:
        print(result.final_output)
except TimeoutError:
    print("Execution timed out")
except AgentError as e:
    print(f"Agent error: {e}")
