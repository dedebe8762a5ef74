"""The runner names where the reference's ``runner`` module has them:
``from helios.runner import RunConfig, RunContext, RunStatus, StreamingRunner``."""

from ._runner import (
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
    StreamingRunner,
    ToolCall,
)

__all__ = [
    "Agent",
    "AgentRunner",
    "Event",
    "RunConfig",
    "RunContext",
    "RunResult",
    "RunStatus",
    "RunStream",
    "Runner",
    "Step",
    "StreamingRunner",
    "ToolCall",
]
