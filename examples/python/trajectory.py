"""Reading the trajectory: each tool call with its input and output."""
import asyncio
from helios import AgentRunner

async def main():
    runner = AgentRunner(task_path="tasks/create-hello-file", model="claude-sonnet-4-20250514")
    result = await runner.run()

    for step in result.trajectory:
        print(f"Tool: {step.tool_name}")
        print(f"Input: {step.tool_input}")
        print(f"Output: {step.tool_output}")
        print("---")

asyncio.run(main())
