"""budsim: an offline LLM deployment planner for the terminal."""

__version__ = "0.1.0"
