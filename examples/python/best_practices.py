"""The reference's best practices together: asyncio.run, checking success, and an output
directory per experiment and time."""
import asyncio
import logging
from datetime import datetime
from helios import AgentRunner

logger = logging.getLogger(__name__)

async def main():
    output_dir = f"results/{datetime.now().strftime('%Y%m%d_%H%M%S')}"
    runner = AgentRunner(task_path="tasks/create-hello-file", model="claude-sonnet-4-20250514", output_dir=output_dir)
    result = await runner.run()
    if not result.success:
        logger.error(f"Task failed: {result.error}")
    print(f"{result.status} in {output_dir}")

asyncio.run(main())
