"""Approved remediation: runbook `http` steps called safely, once, after the right people said yes."""
