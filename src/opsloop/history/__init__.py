"""Past work items from the tool a team leaves, so the digest and health have history on day one."""
