"""Processes that face the outside world: the CLI, the HTTP job service and its store."""
