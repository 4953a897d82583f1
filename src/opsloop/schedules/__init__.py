"""Scheduled runbooks: each tick of a `schedules` entry opens a task (TSK-n) that runs its runbook."""
