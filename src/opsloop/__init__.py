"""opsloop — the product core.

Work items, their lifecycle, storage, the audit chain and the outbox. This
package knows nothing of Slack, HTTP frameworks or the scheduler: `bot/`
adapts the outside world to it (an import-linter contract keeps it so).
"""

__version__ = "0.1.0"
