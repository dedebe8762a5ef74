"""AgentRunner, basic usage: run a task and print its reward."""
import asyncio
from helios import AgentRunner

async def main():
    runner = AgentRunner(
        task_path="tasks/create-hello-file",
        model="claude-sonnet-4-20250514"
    )

    result = await runner.run()
    print(f"Result: {result.reward}")

asyncio.run(main())
