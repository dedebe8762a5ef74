"""Streaming: the agent's text chunk by chunk, then every event with StreamingRunner."""
import asyncio
from helios import Agent, Runner
from helios.runner import StreamingRunner

agent = Agent(name="Assistant", instructions="Be helpful")

async def main():
    # Stream response
    async for chunk in Runner.run_stream(agent, "Tell me a story"):
        print(chunk, end="", flush=True)
    print()

    runner = StreamingRunner(agent)
    async for event in runner.run("Write a poem"):
        if event.type == "text":
            print(event.content, end="")
        elif event.type == "tool_call":
            print(f"\n[Calling: {event.tool_name}]")
        elif event.type == "tool_result":
            print(f"[Result: {event.result}]")
    print()

asyncio.run(main())
