"""A multi-turn conversation: the history goes with each new input. Reads lines from
standard input and stops at its end (the reference's loop never ends by itself)."""
from helios import Agent, Runner
from helios.runner import RunConfig

agent = Agent(name="Assistant", instructions="Be helpful")
config = RunConfig(max_turns=5)

# Multi-turn with context
context = []
while True:
    try:
        user_input = input("You: ")
    except EOFError:
        break
    context.append({"role": "user", "content": user_input})
    result = Runner.run_sync(
        agent,
        user_input,
        config=config,
        history=context
    )
    print(f"Agent: {result.final_output}")
    context.append({"role": "assistant", "content": result.final_output})
