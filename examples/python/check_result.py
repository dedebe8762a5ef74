"""AgentRunner.run(): check whether the task passed."""
import asyncio
from helios import AgentRunner

async def main():
    runner = AgentRunner(task_path="tasks/create-hello-file", model="claude-sonnet-4-20250514")
    result = await runner.run()

    if result.success:
        print("Task passed!")
    else:
        print(f"Task failed: {result.error}")

asyncio.run(main())
