"""Status pages in HTML and Atom: server-rendered, no script, no asset from elsewhere.

HTML comes from the Jinja2 templates in `present/status/` with autoescape on,
so whatever a tenant's name or an approved update holds is shown as text.
The one style sheet is inlined and allowed by its hash in `CSP`, which
otherwise allows nothing: no script, no image, no frame, no form, nothing
from another origin. Atom is written with the standard library's XML writer.
Characters that XML 1.0 cannot carry (control characters) are dropped from
every text before it is rendered, in both.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from xml.etree import ElementTree

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from opsloop.durations import format_duration
from opsloop.status.availability import WINDOW, shown
from opsloop.status.pages import Incident, PublicPage, TenantPage

CSS = (resources.files("opsloop.present") / "status" / "status.css").read_text(encoding="utf-8")
CSP = ("default-src 'none'; "
       f"style-src 'sha256-{base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

# an item's state, or the stage a person wrote an update for, in Statuspage's words
STAGES = {"triggered": "Investigating", "acknowledged": "Investigating", "mitigated": "Monitoring",
          "resolved": "Resolved", "closed": "Resolved", "investigating": "Investigating",
          "identified": "Identified", "monitoring": "Monitoring"}
IMPACTS = {"sev1": "Service outage", "sev2": "Partial outage", "sev3": "Degraded performance",
           "sev4": "Minor issue"}
ATOM = "http://www.w3.org/2005/Atom"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """Text without the characters XML 1.0 (and good HTML) cannot carry."""
    return _NOT_XML.sub("", text)


def when(moment: datetime) -> Markup:
    iso = moment.isoformat().replace("+00:00", "Z")
    return Markup('<time datetime="{}">{}</time>').format(iso, moment.strftime("%Y-%m-%d %H:%M UTC"))


def stage(state: str) -> str:
    return STAGES.get(state, "Investigating")


def impact(severity: str) -> str:
    return IMPACTS.get(severity, "Minor issue")


def _span(delta: timedelta | None) -> str:
    if not delta:
        return "none"
    return format_duration(timedelta(seconds=int(delta.total_seconds())))


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("opsloop.present", "status"), autoescape=select_autoescape(
        enabled_extensions=("html",), default_for_string=True, default=True), undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, stage=stage, impact=impact, span=_span, percent=shown,
                       contract=lambda percent: f"{percent:g}%")
    # what templates print is cleaned; Markup (the style sheet, <time> elements) is ours and kept as it is
    env.finalize = lambda value: clean(value) if isinstance(value, str) and not isinstance(value, Markup) \
        else value
    return env


_ENV = _environment()


def _render(template: str, **context: Any) -> str:
    style = Markup(CSS)  # noqa: S704 - our own style sheet, allowed by its hash in CSP
    return _ENV.get_template(template).render(css=style, days=WINDOW.days, **context)


def tenant_html(page: TenantPage, *, feed_url: str) -> str:
    return _render("tenant.html", page=page, feed_url=feed_url, private=True)


def public_html(page: PublicPage, *, feed_url: str) -> str:
    return _render("public.html", page=page, feed_url=feed_url, private=False)


def not_found_html() -> str:
    return _render("not_found.html", feed_url=None, private=True)


def unavailable_html() -> str:
    return _render("unavailable.html", feed_url=None, private=True)


# --------------------------------------------------------------------------- Atom (RFC 4287)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _urn(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'opsloop-status:' + key)}"


def _entry_text(incident: Incident) -> str:
    lines = [f"{impact(incident.severity)}, started {incident.started:%Y-%m-%d %H:%M UTC}"
             + (f", resolved {incident.resolved:%Y-%m-%d %H:%M UTC}" if incident.resolved else "") + "."]
    for update in incident.updates:
        lines += ["", f"{stage(update.state)} · {update.at:%Y-%m-%d %H:%M UTC}", clean(update.text)]
    return "\n".join(lines)


def atom(incidents: list[Incident], *, title: str, key: str, at: datetime, page_url: str,
         self_url: str) -> bytes:
    """The incidents as an Atom feed, one entry each (newest change first), as Statuspage's history feed."""
    ElementTree.register_namespace("", ATOM)

    def sub(parent: ElementTree.Element, tag: str, text: str | None = None,
            **attrs: str) -> ElementTree.Element:
        element = ElementTree.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    feed = ElementTree.Element(f"{{{ATOM}}}feed")
    sub(feed, "id", _urn(key))
    sub(feed, "title", clean(title))
    entries = sorted(incidents, key=lambda i: i.changed, reverse=True)
    sub(feed, "updated", _iso(entries[0].changed if entries else at))
    sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    sub(feed, "link", rel="alternate", href=page_url, type="text/html")
    sub(sub(feed, "author"), "name", "Service status")
    for incident in entries:
        entry = sub(feed, "entry")
        sub(entry, "id", _urn(incident.key))
        sub(entry, "title", f"{impact(incident.severity)} — {stage(incident.state)}")
        sub(entry, "updated", _iso(incident.changed))
        sub(entry, "published", _iso(incident.started))
        sub(entry, "link", rel="alternate", href=f"{page_url}#incident-{incident.key}", type="text/html")
        sub(entry, "content", _entry_text(incident), type="text")
    return bytes(ElementTree.tostring(feed, encoding="utf-8", xml_declaration=True))
