"""/oncall: who is on call now and next, and overrides."""

from __future__ import annotations

from opsloop.commands.parse import mention, tokens
from opsloop.errors import NotFound, UsageError
from opsloop.messages import Reply, user
from opsloop.oncall import OnCall

ONCALL_HELP = """\
*/oncall* — who is on call
• `/oncall [team]` — who is on call now and next, with handoff times
• `/oncall override [team] @user until <time> [from <time>]` — cover a shift
  (times: `+4h`, `18:00`, `mon 09:00`, `2026-11-23 18:00`, in the team's time zone)
• `/oncall help`"""
OVERRIDE_USAGE = "usage: /oncall override [team] @user until <time> [from <time>]"


class OnCallCommands:
    def __init__(self, oncall: OnCall) -> None:
        self.oncall = oncall

    def oncall_command(self, text: str, actor: str, channel: str | None) -> Reply:
        words = tokens(text)
        if words and words[0].lower() == "help":
            return Reply(ONCALL_HELP)
        if words and words[0].lower() == "override":
            return self._override(words[1:], actor)
        if len(words) > 1:
            raise UsageError(f"usage: /oncall [team] (teams: {', '.join(self.oncall.teams)})")
        teams = [words[0]] if words else self.oncall.teams
        if not teams:
            return Reply("No on-call rotations are defined (add them under `oncall` in the policy file).")
        return Reply("\n".join(self._who(team) for team in teams))

    def _who(self, team: str) -> str:
        try:
            now, following = self.oncall.now_and_next(team)
        except NotFound as error:  # an iCal feed not loaded yet: the other teams still answer
            return f"*{team}*: {error}"
        covering = " (override)" if now.override else ""
        until = self.oncall.local(team, now.ends_at)
        who = (f"{user(now.user)} is on call{covering}" if now.user
               else "nobody is on call (a gap in the schedule)")
        after = user(following.user) if following.user else "nobody (a gap)"
        later = self.oncall.local(team, following.ends_at)
        return f"*{team}*: {who} until {until}; next: {after} until {later}"

    def _override(self, words: list[str], actor: str) -> Reply:
        team: str | None = None
        if words and words[0] in self.oncall.teams:
            team, words = words[0], words[1:]
        who = mention(words[0]) if words else None
        if who is None:
            raise UsageError(OVERRIDE_USAGE)
        lowered = [w.lower() for w in words]
        if "until" not in lowered:
            raise UsageError(OVERRIDE_USAGE)
        until_at = lowered.index("until")
        from_at = lowered.index("from") if "from" in lowered else None
        if from_at is not None and from_at < until_at:
            since, until = words[from_at + 1:until_at], words[until_at + 1:]
        elif from_at is not None:
            since, until = words[from_at + 1:], words[until_at + 1:from_at]
        else:
            since, until = [], words[until_at + 1:]
        if not until or (from_at is not None and not since) or min(until_at, from_at or until_at) != 1:
            raise UsageError(OVERRIDE_USAGE)
        if team is None:
            if len(self.oncall.teams) != 1:
                raise UsageError(f"name the team: {', '.join(self.oncall.teams)}\n{OVERRIDE_USAGE}")
            team = self.oncall.teams[0]
        row = self.oncall.override(actor=actor, team=team, who=who, until=" ".join(until),
                                   since=" ".join(since) or None)
        return Reply(f"{user(who)} is on call for {team} from {self.oncall.local(team, row.starts_at)} "
                     f"until {self.oncall.local(team, row.ends_at)}.")
