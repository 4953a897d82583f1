"""Customer health: signals, scores per tenant, and risk-intervention prompts for CSMs."""
