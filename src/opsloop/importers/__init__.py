"""Importing another tool's configuration as a policy fragment to review (PagerDuty, Grafana OnCall)."""
