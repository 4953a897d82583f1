"""Compliance evidence: what makes the audit chain something an auditor can rely on.

- `personal`: personal data is kept out of the hashed content (a keyed commitment is hashed
  instead), so a person can be erased without breaking the chain.
- `reader` / `verify`: the chain is read as raw text and every defect is reported, never raised.
- `signing` / `checkpoints`: signed checkpoints of the chain's head, kept outside the database,
  prove that neither the tail was cut nor the chain rewritten.
- `erasure`, `retention`: erasing a person, keeping data no longer than the policy says.
- `startup`: every start records what configuration it ran with.
- `bundle`: the evidence bundle for an auditor, and its verification.
"""
