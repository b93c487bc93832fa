"""The HTTP daemon: OpenAI-compatible API over the served model, logging every exchange."""
