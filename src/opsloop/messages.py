"""What the product says, independent of where it is shown, and the markup it says it in.

Messages (`Message`, `Reply`, `Form`) are plain data; `opsloop.present` turns
them into Block Kit for Slack and into text for the console. Buttons carry an
action id and a value that come back unchanged when pressed.

Text inside a message is Slack mrkdwn, the one markup of the product. The
references in it are made here and nowhere else: `user("U1")`, `group("S1")`,
`channel("C1")`, `target("role:approver")`, and `escape()` for anything a
person or a customer typed (so `<!channel>` stays text, never a ping). The
console reads the same markup back into plain words (`present.text`).
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from opsloop.types import SYSTEM_PREFIX, is_system


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # e.g. "incident.acknowledge"
    value: str  # e.g. "INC-1"
    style: Literal["primary", "danger"] | None = None
    url: str | None = None  # a link button (`link.*` action): opens this address, changes nothing


LINK = "link"  # the action family of link buttons: pressing one opens its URL and does nothing here


def link_button(label: str, url: str) -> Button:
    """A button that opens `url` (an http(s) address checked by the caller)."""
    return Button(label=label, action=f"{LINK}.open", value=label, url=url)


@dataclass(frozen=True)
class Message:
    text: str  # the headline; also the notification fallback
    fields: list[tuple[str, str]] = field(default_factory=list)
    body: str | None = None
    buttons: list[Button] = field(default_factory=list)
    context: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(
            text=data["text"],
            fields=[(k, v) for k, v in data.get("fields", [])],
            body=data.get("body"),
            buttons=[Button(**b) for b in data.get("buttons", [])],
            context=data.get("context"),
        )

    def plain(self) -> str:
        """Plain text, for transports without layout (and for logs and tests)."""
        lines = [self.text]
        lines += [f"{k}: {v}" for k, v in self.fields]
        if self.body:
            lines.append(self.body)
        if self.context:
            lines.append(self.context)
        return "\n".join(lines)


FILE = "file"  # the outbox payload `op` of a `File`


@dataclass(frozen=True)
class File:
    """A file to show (e.g. a chart), posted in the thread of the message its outbox row names."""

    filename: str
    title: str
    content: bytes

    def to_payload(self) -> dict[str, Any]:
        return {"op": FILE, "filename": self.filename, "title": self.title,
                "content": base64.b64encode(self.content).decode("ascii")}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> File:
        return cls(filename=str(data["filename"]), title=str(data["title"]),
                   content=base64.b64decode(data["content"]))


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    placeholder: str | None = None
    multiline: bool = False
    optional: bool = False
    options: list[str] | None = None  # a choice among these instead of free text
    initial: str | None = None


@dataclass(frozen=True)
class Form:
    """Questions to ask before acting (Slack shows a modal; the console prints `usage`).

    What is filled in comes back through `Commands.submit(form.id, form.context, values)`.
    """

    id: str  # e.g. "incident.declare"
    title: str
    fields: list[FormField]
    usage: str  # the typed command that does the same, for surfaces without forms
    submit_label: str = "Submit"
    context: str = ""  # opaque, handed back on submit (e.g. the work item it is about)


@dataclass(frozen=True)
class Reply:
    """The answer to a command: shown only to the person who typed it."""

    text: str
    message: Message | None = None
    form: Form | None = None  # set when the answer is a form to fill in


def escape(text: str) -> str:
    """Escape user-supplied text for Slack mrkdwn: `<!channel>` stays text, never a ping."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------- references


def user(user_id: str | None) -> str:
    """A person, as a mention (`—` for nobody); a system actor (`system:prometheus`) by its name."""
    if not user_id:
        return "—"
    if is_system(user_id):
        return escape(user_id.removeprefix(SYSTEM_PREFIX))
    return f"<@{user_id}>"


def link(url: str, text: str) -> str:
    """A link with words (`url` is an http(s) address checked by the caller: no `<`, `>`, `|`)."""
    return f"<{url}|{escape(text)}>"


def group(group_id: str) -> str:
    """A user group (`S...`), as a mention of the group."""
    return f"<!subteam^{group_id}>"


def channel(channel_id: str | None) -> str:
    """A channel, as a link to it (`—` for none)."""
    return f"<#{channel_id}>" if channel_id else "—"


def target(spec: str) -> str:
    """Whom a policy or runbook names: `role:NAME`, `oncall:TEAM`, a user group or a user id."""
    prefix, sep, name = spec.partition(":")
    if sep and prefix in ("role", "oncall"):
        return f"{'role' if prefix == 'role' else 'on-call'} {name}"
    return group(spec) if spec.startswith("S") else user(spec)
