"""The SQLite store: interactions and their feedback (and, later, distilled memories)."""
