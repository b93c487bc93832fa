"""clagent: a local LLM daemon that gets better the more you use it."""

__version__ = "0.1.0"
