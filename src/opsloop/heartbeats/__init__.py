"""Heartbeats (a dead man's switch): a job that should report in and falls silent pages someone."""
