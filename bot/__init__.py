"""Every way the outside world reaches opsloop: the CLI, the console, Slack, HTTP, the scheduler.

`bot.bootstrap` builds the core with THE table (`opsloop/table.py`, via `opsloop.table.assemble`)
and adds what the adapters need; every way in runs that one table.
"""
