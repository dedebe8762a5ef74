"""helios from Python: run an agent on a task, or on a prompt, in real containers.

    import asyncio
    from helios import AgentRunner

    async def main():
        result = await AgentRunner("tasks/create-hello-file", model="claude-sonnet-4-20250514").run()
        print(result.success, result.reward, f"{result.duration:.1f}s")

    asyncio.run(main())

The engine is helios's Rust library; see docs/python.md.
"""

from ._pipeline import (
    EVENT_KINDS,
    ApplyResult,
    ApplyStream,
    PlannedTrial,
    PlanResult,
    TrialOutcome,
    Validation,
    apply,
    apply_async,
    apply_stream,
    plan,
    validate,
)
from ._runner import (
    DEFAULT_AGENT_MODEL,
    DEFAULT_MODEL,
    SCRIPTED_MODELS_VARIABLE,
    Agent,
    AgentRunner,
    Event,
    RunConfig,
    RunContext,
    RunResult,
    RunStatus,
    RunStream,
    Runner,
    Step,
    StepResult,
    StreamingRunner,
    ToolCall,
)
from .errors import (
    AgentError,
    EnvironmentError,
    HeliosError,
    HeliosWarning,
    TaskError,
    TimeoutError,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_AGENT_MODEL",
    "DEFAULT_MODEL",
    "EVENT_KINDS",
    "SCRIPTED_MODELS_VARIABLE",
    "Agent",
    "AgentError",
    "AgentRunner",
    "ApplyResult",
    "ApplyStream",
    "EnvironmentError",
    "Event",
    "HeliosError",
    "HeliosWarning",
    "PlanResult",
    "PlannedTrial",
    "RunConfig",
    "RunContext",
    "RunResult",
    "RunStatus",
    "RunStream",
    "Runner",
    "Step",
    "StepResult",
    "StreamingRunner",
    "TaskError",
    "TimeoutError",
    "ToolCall",
    "TrialOutcome",
    "Validation",
    "apply",
    "apply_async",
    "apply_stream",
    "plan",
    "validate",
]
