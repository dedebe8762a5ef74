"""Runner, basic usage: an agent answers a prompt in a default sandbox, synchronously and
asynchronously."""
import asyncio
from helios import Agent, Runner

agent = Agent(
    name="Assistant",
    instructions="You are helpful."
)
# Synchronous execution
result = Runner.run_sync(agent, "Hello!")
print(result.final_output)

# Asynchronous execution
async def main():
    result = await Runner.run_async(agent, "Hello!")
    print(result.final_output)

asyncio.run(main())
