"""Every error opsloop raises on purpose.

    OpsloopError                 base: the message is safe to show a user
    ├── ConfigError              the policy file, a runbook or the environment is wrong
    ├── UsageError               a command was typed wrong (the message is a usage line)
    └── DomainError              a request the domain refuses; nothing was changed
        ├── NotFound             no such work item, account, ...
        ├── IllegalTransition    the item's state does not allow that action
        ├── PermissionDenied     the actor's roles do not allow that action (audited)
        ├── InvalidInput         a value is malformed or out of range
        └── DirectoryUnavailable the directory (Slack) could not say who someone is; try again

Anything else escaping the core is a bug and is logged as one.
"""

from __future__ import annotations


class OpsloopError(Exception):
    """Base class; `str(error)` is written for the person who caused it."""


class ConfigError(OpsloopError):
    """The policy file, a runbook file or the environment is invalid."""


class UsageError(OpsloopError):
    """A command was typed wrong; the message says how to type it."""


class DomainError(OpsloopError):
    """The domain refused a request; nothing was changed."""


class NotFound(DomainError):
    pass


class IllegalTransition(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class InvalidInput(DomainError):
    pass


class DirectoryUnavailable(DomainError):
    """Who someone is could not be checked (Slack did not answer): refused, never guessed."""
