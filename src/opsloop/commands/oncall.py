"""/oncall: who is on call now and next, and overrides."""

from __future__ import annotations

from opsloop.commands.args import USER, Pattern, Words
from opsloop.commands.grammar import Args, Command, Keyword, Pos, Verb
from opsloop.errors import NotFound, UsageError
from opsloop.messages import Reply, user
from opsloop.oncall import OnCall

TIME = Words("TIME", "a time (+4h, 18:00, mon 09:00 or 2026-11-23 18:00)")


class OnCallCommands:
    def __init__(self, oncall: OnCall) -> None:
        self.oncall = oncall

    def command(self) -> Command:
        team = Pattern(r"[a-z0-9][a-z0-9_-]{0,63}", "team", "an on-call team", check=self._unknown_team)
        return Command("/oncall", "who is on call", [
            Verb("who", "who is on call now and next, with handoff times (every team, or one)",
                 Pos("team", team, optional=True), run=self.who),
            Verb("override", "cover a shift (times in the team's time zone)",
                 Pos("team", team, optional=True),
                 Pos("user", USER), Keyword("until", TIME), Keyword("from", TIME, optional=True),
                 run=self.override),
        ], default="who", hint="To see a team, name it: `/oncall TEAM`",
            footer="Times: `+4h`, `18:00`, `mon 09:00`, `2026-11-23 18:00`.")

    def _unknown_team(self, name: str) -> str | None:
        if name in self.oncall.teams:
            return None
        return f"no on-call team '{name}' (teams: {', '.join(self.oncall.teams) or 'none defined'})"

    def who(self, args: Args) -> Reply:
        teams = [args["team"]] if args["team"] else self.oncall.teams
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

    def override(self, args: Args) -> Reply:
        team, who = args["team"], args["user"]
        if team is None:
            if len(self.oncall.teams) != 1:
                raise UsageError(f"/oncall override: name the team ({', '.join(self.oncall.teams)})")
            team = self.oncall.teams[0]
        row = self.oncall.override(actor=args.actor, team=team, who=who, until=args["until"],
                                   since=args["from"])
        return Reply(f"{user(who)} is on call for {team} from {self.oncall.local(team, row.starts_at)} "
                     f"until {self.oncall.local(team, row.ends_at)}.")
