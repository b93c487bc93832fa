"""Merge methods that combine a fine-tuned model with the served one."""
