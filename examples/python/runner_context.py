"""RunContext: a run's id, turns, variables and history; the variables reach an
AgentRunner's prompts as {{ vars.NAME }}, and a stream keeps turn_count and history current."""
import asyncio
from helios import AgentRunner
from helios.runner import RunContext

context = RunContext(
    run_id="run-123",
    turn_count=0,
    variables={"user": "Alice"},
    history=[]
)
# Access during execution
elapsed = context.elapsed_time()
context.set_variable("key", "value")
value = context.get_variable("key")
print(f"{value} after {elapsed:.3f}s")

async def main():
    stream = AgentRunner("tasks/create-hello-file", model="claude-sonnet-4-20250514", context=context).stream()
    async for _event in stream:
        pass
    print(f"{context.run_id}: {context.turn_count} turns, {len(context.history)} events")

asyncio.run(main())
