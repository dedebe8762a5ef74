"""Running in a Daytona cloud sandbox: needs DAYTONA_API_KEY (without it, the run raises
helios.EnvironmentError saying so, before anything starts)."""
import asyncio
from helios import AgentRunner

async def run_in_cloud():
    runner = AgentRunner(
        task_path="tasks/gui-task",
        model="claude-sonnet-4-20250514",
        provider="daytona"
    )

    result = await runner.run()
    print(f"Cloud execution result: {result.reward}")

asyncio.run(run_in_cloud())
