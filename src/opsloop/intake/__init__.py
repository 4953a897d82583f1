"""Alert intake: Alertmanager webhooks and Events API v2, deduplicated and grouped into incidents."""
