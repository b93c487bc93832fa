"""Consolidation: turns what was logged into a new model version."""
