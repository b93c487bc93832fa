"""The clagent command line."""
