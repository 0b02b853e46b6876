"""orchestrator-completions-agent: find the orchestrator's completions calls in its
Kubernetes logs, ask an Agent API to analyse them, and keep the answer in Prefect."""

__version__ = "0.1.0"
