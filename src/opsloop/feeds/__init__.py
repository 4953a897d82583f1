"""On-call schedules fed by iCalendar files (PagerDuty's and Grafana OnCall's exports, or any other)."""
