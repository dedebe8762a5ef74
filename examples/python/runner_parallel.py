"""Parallel execution: three agents at once with asyncio.gather (each run works on the
engine's threads, without the GIL)."""
import asyncio
from helios import Agent, Runner

agents = [
    Agent(name="Agent1", instructions="..."),
    Agent(name="Agent2", instructions="..."),
    Agent(name="Agent3", instructions="...")
]

async def run_parallel():
    tasks = [
        Runner.run_async(agent, "Process this")
        for agent in agents
    ]
    results = await asyncio.gather(*tasks)
    return results

results = asyncio.run(run_parallel())
for result in results:
    print(result.run_id, result.status, result.final_output)
