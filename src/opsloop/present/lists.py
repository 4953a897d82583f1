"""A page of work items, as a person reads it: each item's age and state, and how to see the rest."""

from __future__ import annotations

import shlex
from dataclasses import replace
from datetime import timedelta

from opsloop.durations import format_duration
from opsloop.exception_approvals import time_left
from opsloop.listing import PAGE_SIZE, ItemPage, ItemQuery
from opsloop.messages import Button, Message, Reply, escape, user
from opsloop.types import Kind

NEXT = "list.next"  # the button that shows the next page; its value is the command and its words
_SHOWN_TITLE = 90  # a list line shows this much of a title (the card shows all of it)


def _said(query: ItemQuery) -> list[tuple[str, str]]:
    """Each filter the query has, as (the word that asks for it, how a person reads it), in order."""
    said: list[tuple[str, str]] = []
    if query.severity is not None:
        said.append((query.severity.value, query.severity.value))
    if query.tenant is not None:
        said.append((f"tenant:{query.tenant}", f"tenant {query.tenant}"))
    if query.since is not None:
        said.append((f"since:{format_duration(query.since)}",
                     f"opened in the last {format_duration(query.since)}"))
    if query.mine is not None:
        said.append(("mine", "yours"))
    if query.text:
        quoted = shlex.quote(query.text)
        said.append((quoted if quoted != query.text else f"'{query.text}'",
                     f"title has “{escape(query.text)}”"))
    return said


def query_words(query: ItemQuery) -> str:
    """The words that ask for `query` again (`closed sev1 tenant:acme since:7d mine 'db' page:2`)."""
    words = [query.which, *(word for word, _ in _said(query))]
    if query.page > 1:
        words.append(f"page:{query.page}")
    return " ".join(words)


def _filters(query: ItemQuery) -> str:
    said = [words for _, words in _said(query)]
    return f" ({', '.join(said)})" if said else ""


def page_reply(page: ItemPage, command: str) -> Reply:
    query = page.query
    noun = f"{query.kind.value}s"
    heading = f"{query.which.capitalize()} {noun}" if query.which != "all" else f"All {noun}"
    if page.total == 0:
        return Reply(f"No {noun if query.which == 'all' else f'{query.which} {noun}'}{_filters(query)}.")
    if not page.items:
        return Reply(f"Page {query.page} is past the end: {page.total} {noun} match{_filters(query)}, "
                     f"{page.pages} page{'s' if page.pages > 1 else ''} of {PAGE_SIZE}. "
                     f"First page: `{command} list {query_words(replace(query, page=1))}`")
    lines = [f"*{heading}*{_filters(query)} — {page.first}-{page.last} of {page.total}, newest first"]
    for listed in page.items:
        i = listed.item
        title = i.title if len(i.title) <= _SHOWN_TITLE else i.title[:_SHOWN_TITLE - 1] + "…"
        facts = [i.state]
        if query.kind is Kind.EXCEPTION and i.state == "approved":
            left = time_left(i, page.now)
            if left:
                facts.append(left)
        facts.append(f"{_age(page.now - i.created_at)} old")
        if listed.tenants:
            facts.append(", ".join(listed.tenants))
        if i.owner and query.kind is not Kind.EXCEPTION:
            facts.append(f"owner {user(i.owner)}")
        lines.append(f"• {i.ref} [{i.severity}] {escape(title)} — {' · '.join(facts)}")
    if not page.more:
        return Reply("\n".join(lines))
    more = query.next()
    typed = f"{command} list {query_words(more)}"
    remaining = page.total - page.last
    lines.append(f"{remaining} more: `{typed}` or press Next")
    button = Button(label=f"Next {min(PAGE_SIZE, remaining)}", action=NEXT,
                    value=f"{command} {query_words(more)}")
    return Reply("\n".join(lines), message=Message(text=f"{remaining} more {noun}", buttons=[button]))


def _age(age: timedelta) -> str:
    """To the minute: `3h12m`, not `3h12m41s`; `<1m` for the first minute."""
    if age < timedelta(minutes=1):
        return "<1m"
    return format_duration(timedelta(minutes=int(age.total_seconds() // 60)))
