"""Three runs gathered with asyncio against one run alone, through the Python package.

    python benches/python_parallel.py [SECONDS]

Each run is the terminal agent with the scripted model on tasks/create-hello-file, whose
one bash call sleeps SECONDS (default 5) in the container; the image is built before the
timing starts. Prints one run's wall time, three gathered runs' wall time and the ratio
(1.0 means fully parallel, 3.0 fully serial). Figures go to docs/benchmarks.md.
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from helios import AgentRunner


async def main(seconds: float) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="helios-bench-"))
    script = scratch / "nap.yaml"
    script.write_text(
        "replies:\n"
        f"  - tool_calls: [{{ name: bash, input: {{ command: 'sleep {seconds}' }} }}]\n"
        "  - tool_calls: [{ name: finish, input: { summary: done } }]\n"
    )

    def runner(name: str) -> AgentRunner:
        return AgentRunner(
            "tasks/create-hello-file", model="scripted", script=script, output_dir=scratch / name
        )

    await AgentRunner("tasks/create-hello-file", agent="oracle", output_dir=scratch / "warm").run()
    started = time.perf_counter()
    await runner("one").run()
    one = time.perf_counter() - started
    started = time.perf_counter()
    results = await asyncio.gather(*(runner(f"p{i}").run() for i in range(3)))
    three = time.perf_counter() - started
    assert all(r.status.value == "COMPLETED" for r in results), results
    print(f"one run: {one:.2f} s; three gathered: {three:.2f} s; ratio {three / one:.2f}")


asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0))
