"""Fleet rollouts: one runbook `http` step called once per tenant, in waves, within an error budget."""
