"""Every way the outside world reaches opsloop: the CLI, the console, Slack, HTTP, the scheduler.

`bot.bootstrap` is the one place where everything is wired together.
"""
