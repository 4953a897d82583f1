"""A local stand-in for the Slack Web API that records every call and can be scripted.

Serves `POST /api/<method>` (form-encoded or JSON, as slack_sdk sends them),
`POST /respond/<anything>` (response_url posts) and `POST /upload/<file id>`
(the upload URLs `files.getUploadURLExternal` hands out; the bytes are kept in
`uploads`) on 127.0.0.1, an ephemeral port, in a daemon thread. As Slack does,
`files.completeUploadExternal` refuses a file whose bytes never arrived.
Scripting:

    mock.script("chat.postMessage", Answer(429, headers={"Retry-After": "1"}), Answer(429))
    mock.down = True     # every call answers 503 until set back to False
    mock.drop = True     # connections are closed without an answer (a network failure)

`socket_url` is what `apps.connections.open` hands out (a Socket Mode server's ws:// URL);
unset, that method fails as it does for a token without `connections:write`.

`users` is the workspace (id -> handle; `users.info`, and `users.list` a page of
`limit` at a time with a cursor); a handle starting with `-` is a deactivated account.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# the people of tests/bot/slack_policy.yml (and the sample policy), by handle
WORKSPACE = {"U0RESP1": "ann", "U0RESP2": "bob", "U0SRE1": "sre.one", "U0SRE2": "sre.two",
             "U0CSM1": "casey", "U0CEO": "ceo", "U0ADMIN": "admin", "U0GROUPIE": "groupie"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 refuses connections under a benchmark's load


@dataclass
class Answer:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int
    answer: dict[str, Any] = field(default_factory=dict)  # what the mock answered (e.g. a message's ts)


class MockSlack:
    def __init__(self, *, groups: dict[str, list[str]] | None = None,
                 emails: dict[str, str] | None = None, users: dict[str, str] | None = None) -> None:
        self.calls: list[Call] = []
        self.groups = groups or {}
        self.users = dict(WORKSPACE if users is None else users)
        self.emails = emails or {}  # users.lookupByEmail: email -> user id
        self.socket_url: str | None = None  # apps.connections.open's answer (Socket Mode)
        self.down = False
        self.drop = False
        self._scripts: dict[str, list[Answer]] = defaultdict(list)
        self._ts = itertools.count(1)
        self._channels = itertools.count(1)
        self._files = itertools.count(1)
        self.declared: dict[str, int] = {}  # file id -> the length its upload URL was asked for
        self.uploads: dict[str, bytes] = {}  # file id -> the bytes POSTed to its upload URL
        self.upload_calls: list[tuple[str, dict[str, str]]] = []  # (file id, request headers)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def start(self) -> MockSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, method: str, *answers: Answer) -> None:
        with self._lock:
            self._scripts[method].extend(answers)

    def ok_calls(self, method: str) -> list[Call]:
        """The calls of `method` that were answered with success."""
        with self._lock:
            return [c for c in self.calls if c.method == method and c.status == 200]

    def all_calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if method is None or c.method == method]

    # ------------------------------------------------------------------ answering

    def _answer(self, method: str, params: dict[str, Any]) -> Answer:
        with self._lock:
            if self.down:
                return Answer(503, {"ok": False, "error": "service_unavailable"})
            if self._scripts[method]:
                return self._scripts[method].pop(0)
        if method.startswith("respond/"):
            return Answer(200, {"ok": True})
        channel = str(params.get("channel", ""))
        if channel.startswith(("U", "W")):
            channel = "D" + channel[1:]  # Slack answers a DM's channel id
        answers: dict[str, dict[str, Any]] = {
            "auth.test": {"user_id": "U0BOT", "bot_id": "B0BOT", "team_id": "T0TEAM", "team": "Team",
                          "url": "https://team.slack.com/"},
            "chat.postMessage": {"channel": channel, "ts": f"1700000000.{next(self._ts):06d}"},
            "chat.update": {"channel": channel, "ts": params.get("ts")},
            "chat.postEphemeral": {"message_ts": f"1700000000.{next(self._ts):06d}"},
            "views.open": {"view": {"id": "V0VIEW"}},
            "conversations.create": {"channel": {"id": f"C0NEW{next(self._channels)}",
                                                 "name": params.get("name")}},
            "conversations.invite": {"channel": {"id": channel}},
            "usergroups.users.list": {"users": self.groups.get(str(params.get("usergroup")), [])},
        }
        if method == "canvases.create":  # not in the table above: it is built for every call, and a
            # file id drawn for each would number the uploads' files by how many calls came before
            return Answer(200, {"ok": True, "canvas_id": f"F0CANVAS{next(self._files):04d}"})
        if method == "apps.connections.open":
            return Answer(200, {"ok": True, "url": self.socket_url} if self.socket_url else
                          {"ok": False, "error": "missing_scope", "needed": "connections:write"})
        if method == "users.info":
            member = self._member(str(params.get("user", "")))
            return Answer(200, {"ok": True, "user": member} if member else
                          {"ok": False, "error": "user_not_found"})
        if method == "users.list":
            ids, start = sorted(self.users), int(params.get("cursor") or 0)
            page = ids[start:start + int(params.get("limit") or 100)]
            following = str(start + len(page)) if start + len(page) < len(ids) else ""
            return Answer(200, {"ok": True, "members": [self._member(i) for i in page],
                                "response_metadata": {"next_cursor": following}})
        if method == "users.lookupByEmail":
            found = self.emails.get(str(params.get("email", "")).lower())
            return Answer(200, {"ok": True, "user": {"id": found}} if found else
                          {"ok": False, "error": "users_not_found"})
        if method == "files.getUploadURLExternal":
            file_id = f"F0{next(self._files):04d}"
            with self._lock:
                self.declared[file_id] = int(params.get("length") or -1)
            return Answer(200, {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"})
        if method == "files.completeUploadExternal":
            files = params.get("files")
            files = json.loads(files) if isinstance(files, str) else files or []
            with self._lock:
                missing = [f for f in files if len(self.uploads.get(f.get("id"), b"")) != self.declared.get(
                    f.get("id"), -2)]
            if not files or missing:
                return Answer(200, {"ok": False, "error": "file_not_found"})
            return Answer(200, {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]})
        return Answer(200, {"ok": True, **answers.get(method, {})})

    def _member(self, user_id: str) -> dict[str, Any] | None:
        handle = self.users.get(user_id)
        if handle is None:
            return None
        name = handle.lstrip("-")
        return {"id": user_id, "name": name, "deleted": handle.startswith("-"), "real_name": name.title(),
                "profile": {"display_name": name, "real_name": name.title()}}

    def _upload(self, handler: BaseHTTPRequestHandler, file_id: str, data: bytes) -> None:
        with self._lock:
            answer = self._scripts["upload"].pop(0) if self._scripts["upload"] else None
            self.upload_calls.append((file_id, dict(handler.headers)))
            if answer is None or answer.status == 200:
                self.uploads[file_id] = data
        status = answer.status if answer is not None else 200
        body = f"OK - {len(data)}".encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack's servers do

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                split = urlsplit(self.path)
                if split.path.startswith("/upload/"):  # raw bytes, not a Web API call
                    mock._upload(self, split.path.removeprefix("/upload/"), data)
                    return
                raw = data.decode()
                method = split.path.removeprefix("/api/").lstrip("/")
                params: dict[str, Any] = dict(parse_qsl(split.query))
                if "json" in (self.headers.get("Content-Type") or ""):
                    params.update(json.loads(raw or "{}"))
                else:
                    params.update(parse_qsl(raw))
                if isinstance(params.get("blocks"), str):
                    params["blocks"] = json.loads(params["blocks"])
                if mock.drop:
                    with mock._lock:
                        mock.calls.append(Call(method, params, dict(self.headers), 0))
                    self.close_connection = True
                    return
                answer = mock._answer(method, params)
                with mock._lock:
                    mock.calls.append(Call(method, params, dict(self.headers), answer.status,
                                           dict(answer.body or {})))
                data = json.dumps(answer.body if answer.body is not None else {"ok": False}).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        return Handler
