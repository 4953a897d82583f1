"""`opsloop review INC-n [--markdown|--json]`: print a review as its document, or as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any
from zoneinfo import ZoneInfo

from bot.bootstrap import bootstrap
from bot.settings import Settings
from opsloop.present.reviews import markdown
from opsloop.reviews.record import iso

OK = 0


def register(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    review = sub.add_parser("review", help="print a post-incident review (Markdown, or JSON with --json)")
    review.add_argument("ref", help="the incident, e.g. INC-4")
    form = review.add_mutually_exclusive_group()
    form.add_argument("--markdown", dest="as_json", action="store_false", help="the document (default)")
    form.add_argument(
        "--json", dest="as_json", action="store_true", help="the review and its versions as JSON"
    )
    review.set_defaults(run=cmd_review, as_json=False)


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    services = bootstrap(settings, load_accounts=False, load_feeds=False)
    view = services.reviews.get(args.ref)
    review, now = view.review, services.clock.now()
    if not args.as_json:
        print(markdown(review, view.doc, view.followups, ZoneInfo(services.policy.timezone), now))
        return OK
    versions = services.reviews.versions(args.ref)
    print(
        json.dumps(
            {
                "ref": view.ref,
                "state": review.state,
                "version": review.version,
                "owner": review.owner,
                "drafted_at": iso(review.drafted_at),
                "drafted_by": review.drafted_by,
                "due_at": iso(review.due_at),
                "submitted_at": iso(review.submitted_at),
                "published_at": iso(review.published_at),
                "published_by": review.published_by,
                "sha256": review.sha256,
                "document": view.doc,
                "followups": [
                    {
                        "ref": f.ref,
                        "what": f.what,
                        "owner": f.owner,
                        "due_at": iso(f.due_at),
                        "link": f.link,
                        "closed_at": iso(f.closed_at),
                        "note": f.note,
                    }
                    for f in view.followups
                ],
                "versions": [
                    {"version": v.version, "saved_at": iso(v.saved_at), "saved_by": v.saved_by}
                    for v in versions
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return OK
