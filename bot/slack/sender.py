"""The outbox's `chat` transport for Slack: one outbox row, one Web API call.

Runs in the dispatcher's worker thread, so it uses slack_sdk's synchronous
`WebClient`, with slack_sdk's own retries switched off: the durable outbox
owns retrying (it survives restarts, keeps per-channel order and paces each
channel), an in-process retry loop would only hide failures from it.

How Slack's answers map onto the outbox:
- 429 or `ratelimited`: `DeliveryError(retry_after=Retry-After)`;
- 5xx, connection errors, timeouts and Slack's own transient errors:
  `DeliveryError` (backoff);
- bad or revoked credentials: `DeliveryError` too, so messages wait for an
  operator to fix the token instead of being thrown away;
- anything else Slack refuses (`channel_not_found`, `not_in_channel`,
  `invalid_blocks`, ...) will never succeed: `PermanentDeliveryError`.

A file (`opsloop.messages.File`, e.g. the digest's chart) goes up with Slack's
current upload flow: `files.getUploadURLExternal` (filename, length), the
bytes POSTed to the URL it answers (no token: the URL itself is the
permission), then `files.completeUploadExternal` shares it in the channel,
in the thread of its parent message. A retry starts the flow again; an
upload that was never completed is discarded by Slack.

A user id as target (U...) is a direct message: `chat.postMessage` to a user
id posts in the app's DM with that user (no `im:write` scope needed), and
Slack answers with the DM's channel id, stored for later updates.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse, WebClient

from bot.slack.blocks import fallback_text, render
from opsloop.authz import Directory
from opsloop.incident_channels import CREATE_CHANNEL, DedicatedChannels
from opsloop.messages import FILE, File, Message
from opsloop.models import OutboxMessage
from opsloop.outbox import Delivered, DeliveryError, PermanentDeliveryError, retry_after
from opsloop.present.reviews import DOC as REVIEW_DOC

log = logging.getLogger(__name__)

TRANSIENT = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "timeout", "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "team_access_not_granted",
})
# what Slack answers canvases.create when this workspace or token cannot have canvases
NO_CANVAS = ("missing_scope", "not_allowed_token_type", "canvas_disabled_user_team",
             "team_tier_cannot_create_canvases", "free_teams_cannot_create_non_tab_canvases")
NAME_ATTEMPTS = 4  # name_taken: try name, name-2, name-3, name-4
MAX_INVITE = 1000  # conversations.invite takes at most this many users per call


def web_client(token: str, base_url: str, *, timeout: int = 10) -> WebClient:
    """A WebClient without slack_sdk's retry handlers (the outbox retries)."""
    return WebClient(token=token, base_url=_slash(base_url), timeout=timeout, retry_handlers=[])


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


class SlackSender:
    def __init__(
        self,
        client: WebClient,
        *,
        channels: DedicatedChannels | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.client = client
        self.channels = channels
        self.directory = directory

    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        if message.payload.get("op") == CREATE_CHANNEL:
            return self._create_channel(message.payload)
        if message.payload.get("op") == FILE:
            return self._upload(message, parent)
        if message.payload.get("op") == REVIEW_DOC:
            return self._review(message, parent)
        body = Message.from_json(message.payload["message"])
        content = {"text": fallback_text(body), "blocks": render(body)}
        if message.update_key is not None or message.thread_key is not None:
            if parent is None or parent.external_id is None or parent.external_target is None:
                raise PermanentDeliveryError(f"{message.update_key or message.thread_key} was never posted")
            if message.update_key is not None:
                self._call("chat.update", channel=parent.external_target, ts=parent.external_id, **content)
                return Delivered(external_id=parent.external_id, external_target=parent.external_target)
            # `broadcast`: a thread line that also shows in the channel (e.g. SLA warnings, breaches)
            also = {"reply_broadcast": True} if message.payload.get("broadcast") else {}
            answer = self._call("chat.postMessage", channel=parent.external_target,
                                thread_ts=parent.external_id, **content, **also)
        else:
            answer = self._call("chat.postMessage", channel=self._resolve(message.target), **content)
        return Delivered(external_id=answer.get("ts"), external_target=answer.get("channel"))

    def _resolve(self, target: str) -> str:
        if self.channels is None:
            return target
        channel = self.channels.resolve(target)
        if channel is None:
            raise DeliveryError(f"{target}: the channel is not created yet")
        return channel

    # ------------------------------------------------------------------ files

    def _upload(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        file = File.from_payload(message.payload)
        if message.thread_key is not None and (
                parent is None or parent.external_id is None or parent.external_target is None):
            raise PermanentDeliveryError(f"{message.thread_key} was never posted")
        channel = parent.external_target if parent is not None else self._resolve(message.target)
        assert channel is not None
        thread = parent.external_id if parent is not None else None
        return Delivered(external_id=self._share(channel, thread, file), external_target=channel)

    def _share(self, channel: str, thread: str | None, file: File) -> str:
        """Upload `file` to `channel` (in `thread`); its file id."""
        ticket = self._call_form("files.getUploadURLExternal",
                                 {"filename": file.filename, "length": len(file.content)})
        file_id = str(ticket["file_id"])
        self._put_bytes(str(ticket["upload_url"]), file.content)
        shared: dict[str, Any] = {"files": json.dumps([{"id": file_id, "title": file.title}]),
                                  "channel_id": channel}
        if thread is not None:
            shared["thread_ts"] = thread
        self._call_form("files.completeUploadExternal", shared)
        return file_id

    def _put_bytes(self, url: str, content: bytes) -> None:
        if urlsplit(url).scheme not in ("https", "http"):
            raise PermanentDeliveryError("files.getUploadURLExternal answered a URL that is not http(s)")
        request = urllib.request.Request(url, data=content, method="POST",  # noqa: S310 - scheme checked
                                         headers={"Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(request, timeout=self.client.timeout) as answer:  # noqa: S310
                answer.read()
        except HTTPError as error:
            if error.code >= 500 or error.code == 429:
                raise DeliveryError(f"file upload: HTTP {error.code}") from None
            raise PermanentDeliveryError(f"file upload: HTTP {error.code}") from None
        except (URLError, OSError, TimeoutError) as error:
            raise DeliveryError(f"file upload: cannot reach Slack ({type(error).__name__})") from None

    # ------------------------------------------------------------------ review documents

    def _review(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        """A review's document: a canvas when the workspace grants `canvases:write`, else a line in the
        item's thread with the Markdown uploaded as a file. A later version edits the canvas (or
        uploads the new file in the same thread); `external_id` says which: `canvas:ID` or `thread:TS`."""
        op = message.payload
        markdown, title = str(op["markdown"]), str(op["title"])
        if parent is None or parent.external_id is None or parent.external_target is None:
            raise PermanentDeliveryError(f"{message.update_key or message.thread_key} was never posted")
        channel = parent.external_target
        content = {"type": "markdown", "markdown": markdown}
        if message.update_key is not None:  # a later version of a document already shown
            kind, _, where = parent.external_id.partition(":")
            if kind == "canvas":
                self._call("canvases.edit", canvas_id=where,
                           changes=[{"operation": "replace", "document_content": content}])
            else:
                self._file_in_thread(channel, where, op)
            return Delivered(external_id=parent.external_id, external_target=channel)
        thread = parent.external_id
        try:
            answer = self._call("canvases.create", title=title, document_content=content)
        except PermanentDeliveryError as refused:
            if not any(code in str(refused) for code in NO_CANVAS):
                raise
            self._file_in_thread(channel, thread, op)
            return Delivered(external_id=f"thread:{thread}", external_target=channel)
        canvas = str(answer["canvas_id"])
        self._call("canvases.access.set", canvas_id=canvas, access_level="read", channel_ids=[channel])
        line = Message(text=f"{op['line']}: a canvas")
        self._call("chat.postMessage", channel=channel, thread_ts=thread, text=fallback_text(line),
                   blocks=render(line))
        return Delivered(external_id=f"canvas:{canvas}", external_target=channel)

    def _file_in_thread(self, channel: str, thread: str, op: dict[str, Any]) -> None:
        line = Message(text=str(op["line"]))
        self._call("chat.postMessage", channel=channel, thread_ts=thread, text=fallback_text(line),
                   blocks=render(line))
        self._share(channel, thread, File(filename=str(op["filename"]), title=str(op["title"]),
                                          content=str(op["markdown"]).encode()))

    # ------------------------------------------------------------------ dedicated channels

    def _create_channel(self, op: dict[str, Any]) -> Delivered:
        if self.channels is None:
            raise PermanentDeliveryError("dedicated channels are not set up for this sender")
        ref, fallback = str(op["ref"]), str(op["fallback"])
        channel = self.channels.channel_of(ref)  # set by an earlier attempt that died before recording
        if channel is None:
            try:
                channel = self._new_channel(str(op["name"]))
            except PermanentDeliveryError as refused:
                self.channels.failed(ref, fallback, str(refused))
                raise
            # stored before inviting: a retry after a failed invite must not create another channel
            self.channels.created(ref, channel)
        self._invite(channel, [str(u) for u in op.get("invite", [])])
        return Delivered(external_id=channel, external_target=channel)

    def _new_channel(self, name: str) -> str:
        for attempt in range(1, NAME_ATTEMPTS + 1):
            candidate = name if attempt == 1 else f"{name[:76]}-{attempt}"
            try:
                answer = self._call("conversations.create", name=candidate, is_private=False)
            except PermanentDeliveryError as refused:
                if "name_taken" in str(refused) and attempt < NAME_ATTEMPTS:
                    continue
                raise
            return str(answer["channel"]["id"])
        raise AssertionError("unreachable")

    def _invite(self, channel: str, targets: list[str]) -> None:
        users: list[str] = []
        for target in targets:
            if target.startswith("S"):
                members = self.directory.members(target) if self.directory else frozenset()
                users += sorted(members)
            else:
                users.append(target)
        users = list(dict.fromkeys(u for u in users if u.startswith(("U", "W"))))
        for start in range(0, len(users), MAX_INVITE):
            try:
                self._call("conversations.invite", channel=channel,
                           users=",".join(users[start:start + MAX_INVITE]), force=True)
            except PermanentDeliveryError as refused:
                # someone who cannot be invited (already there, deactivated, a bot) must not keep
                # the card from being posted; the channel exists and the rest were invited
                log.warning("inviting to %s: %s", channel, refused)

    # ------------------------------------------------------------------ one call

    def _call(self, method: str, **params: Any) -> SlackResponse:
        return self._api(method, {"json": params})

    def _call_form(self, method: str, params: dict[str, Any]) -> SlackResponse:
        """For the methods that take form-encoded arguments only (the file upload flow)."""
        return self._api(method, {"data": params})

    def _api(self, method: str, body: dict[str, Any]) -> SlackResponse:
        try:
            return self.client.api_call(method, **body)
        except SlackApiError as error:
            raise _classify(method, error.response) from None
        except (URLError, OSError, TimeoutError, SlackClientError) as error:
            raise DeliveryError(f"{method}: cannot reach Slack ({type(error).__name__}: {error})") from None


def _classify(method: str, response: SlackResponse) -> Exception:
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or f"HTTP {status}")
    if status == 429 or code == "ratelimited":
        return DeliveryError(f"{method}: rate limited", retry_after=_retry_after(response.headers))
    if status >= 500 or code in TRANSIENT:
        return DeliveryError(f"{method}: {code}")
    return PermanentDeliveryError(f"{method}: {code}")


def _retry_after(headers: dict[str, Any]) -> float | None:
    """Slack's `Retry-After`, read strictly and clamped (None: the outbox's own backoff)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            return retry_after(str(value[0] if isinstance(value, list) else value), datetime.now(UTC))
    return None
