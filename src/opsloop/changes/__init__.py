"""Change events (deploys, config changes): stored, and shown beside incidents on the same service."""
