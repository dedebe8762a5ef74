"""The web viewer: watch=True serves the run live on http://localhost:8080 (or the next
free port; the address is printed) while it goes on. The task has a desktop, so the
agent is the computer-use one."""
import asyncio
from helios import AgentRunner

async def run_with_viewer():
    runner = AgentRunner(
        task_path="tasks/explore-desktop",
        model="claude-sonnet-4-20250514",
        watch=True  # Start web viewer
    )

    # Viewer available at http://localhost:8080
    result = await runner.run()

asyncio.run(run_with_viewer())
