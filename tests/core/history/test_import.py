"""`opsloop history import`: opsloop's CSV, PagerDuty's and Grafana OnCall's exports, all or nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from opsloop import audit
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.history.models import ImportedItem
from opsloop.history.service import import_history
from opsloop.models import Account, AuditEvent, TimelineEvent, WorkItem, WorkItemTenant
from tests.support import FakeClock

HEADER = "id,kind,title,severity,tenants,service,opened_at,acknowledged_at,resolved_at\n"
ACTOR = "system:cli"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def accounts(db: Database) -> None:
    with db.transaction() as session:
        for tid in ("acme", "globex"):
            session.add(Account(id=tid, name=tid.title(), tier="enterprise"))


def items(db: Database) -> list[WorkItem]:
    with db.transaction() as session:
        return list(session.exec(select(WorkItem).order_by(col(WorkItem.id))))


def test_csv_rows_become_closed_imported_items_audited_once_each(db: Database, clock: FakeClock,
                                                                  tmp_path: Path) -> None:
    accounts(db)
    path = write(tmp_path, "history.csv", HEADER
                 + 'old-2,incident,"Checkout, EU down",sev1,acme globex,checkout,2026-10-02T10:00:00+02:00,'
                   "2026-10-02T10:05:00+02:00,2026-10-02T11:30:00+02:00\n"
                 + "old-1,escalation,Acme cannot export,sev3,acme,,2026-10-01T09:00:00Z,,2026-10-03T09:00:00Z\n")
    result = import_history(db, clock, path, actor=ACTOR)
    assert (result.source, result.created, result.updated, result.unchanged) == ("csv", 2, 0, 0)
    assert result.first == datetime(2026, 10, 1, 9, tzinfo=UTC)
    inc, esc = sorted(items(db), key=lambda i: i.kind, reverse=True)
    assert (inc.ref, inc.state, inc.severity, inc.title) == ("INC-1", "closed", "sev1", "Checkout, EU down")
    assert inc.created_at == datetime(2026, 10, 2, 8, tzinfo=UTC)
    assert (inc.acknowledged_at, inc.resolved_at, inc.closed_at) == (
        datetime(2026, 10, 2, 8, 5, tzinfo=UTC), datetime(2026, 10, 2, 9, 30, tzinfo=UTC),
        datetime(2026, 10, 2, 9, 30, tzinfo=UTC))
    assert inc.labels == {"imported": "csv", "imported_id": "old-2", "service": "checkout"}
    assert (esc.ref, esc.state, esc.acknowledged_at) == ("ESC-1", "closed", None)
    with db.transaction() as session:
        tenants = session.exec(select(WorkItemTenant.tenant_id).where(WorkItemTenant.work_item_id == inc.id)).all()
        assert sorted(tenants) == ["acme", "globex"]
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "history.imported")).all()
        assert sorted(e.subject for e in events) == ["ESC-1", "INC-1"]
        assert {e.actor for e in events} == {ACTOR}
        assert audit.verify(session).ok
        marks = session.exec(select(ImportedItem)).all()
        assert {(m.source, m.external_id) for m in marks} == {("csv", "old-1"), ("csv", "old-2")}
        assert session.exec(select(TimelineEvent.text).where(TimelineEvent.work_item_id == inc.id)).all() == [
            "Imported from csv (id old-2)"]


def test_reimporting_the_same_ids_updates_instead_of_duplicating(db: Database, clock: FakeClock,
                                                                  tmp_path: Path) -> None:
    accounts(db)
    row = "a1,incident,Login slow,sev2,acme,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z\n"
    path = write(tmp_path, "h.csv", HEADER + row + row.replace("a1,", "a2,"))
    import_history(db, clock, path, actor=ACTOR)
    write(tmp_path, "h.csv", HEADER + row.replace("sev2,acme", "sev1,globex") + row.replace("a1,", "a2,"))
    again = import_history(db, clock, path, actor=ACTOR)
    assert (again.created, again.updated, again.unchanged) == (0, 1, 1)
    rows = items(db)
    assert [(i.ref, i.severity) for i in rows] == [("INC-1", "sev1"), ("INC-2", "sev2")]
    with db.transaction() as session:
        assert session.exec(select(WorkItemTenant.tenant_id).where(WorkItemTenant.work_item_id == rows[0].id)
                            ).all() == ["globex"]
        [change] = session.exec(select(AuditEvent).where(AuditEvent.action == "history.updated")).all()
        assert change.subject == "INC-1"
        assert change.before == {"severity": "sev2", "tenants": ["acme"]}
        assert change.after == {"source": "csv", "id": "a1", "severity": "sev1", "tenants": ["globex"]}
        assert audit.verify(session).ok


@pytest.mark.parametrize(("line", "problem"), [
    ("x,incident,T,sev5,,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z", "row 3: severity: Input should be"),
    ("x,incident,T,sev1,,,2026-11-01T08:00:00,,2026-11-01T09:00:00Z", "row 3: opened_at: Input should have timezone"),
    ("x,incident,T,sev1,,,2026-11-01T08:00:00Z,,", "row 3: resolved_at: required"),
    ("x,incident,T,sev1,,,2026-11-01T08:00:00Z,,2026-11-01T07:00:00Z", "row 3: resolved_at: is before opened_at"),
    ("x,incident,T,sev1,,,2026-11-01T08:00:00Z,2026-11-01T07:00:00Z,2026-11-01T09:00:00Z",
     "row 3: acknowledged_at: is before opened_at"),
    ("x,incident,T,sev1,,,2026-11-01T08:00:00Z,,2027-01-01T09:00:00Z", "row 3: resolved_at: is in the future"),
    ("x,exception,T,sev1,,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z",
     "row 3: kind: only incidents and escalations can be imported"),
    ("x,incident,,sev1,,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z", "row 3: title: String should have at least 1"),
    ("x,incident,T,sev1,initech,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z",
     "row 3: tenants: unknown tenant 'initech'"),
    ("ok,incident,T,sev1,,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z", "row 3: id: 'ok' appears twice (first at row 2)"),
    ("x,incident,T,sev1,,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z,extra", "row 3: expected 9 columns"),
])
def test_a_bad_row_is_named_with_its_field_and_nothing_is_stored(db: Database, clock: FakeClock, tmp_path: Path,
                                                                 line: str, problem: str) -> None:
    accounts(db)
    path = write(tmp_path, "h.csv", HEADER + "ok,incident,Fine,sev1,,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z\n"
                 + line + "\n")
    with pytest.raises(ConfigError) as refused:
        import_history(db, clock, path, actor=ACTOR)
    assert problem in str(refused.value) and str(path) in str(refused.value)
    assert items(db) == []  # all or nothing: the good first row was not stored either


def test_a_wrong_header_or_an_unknown_format_is_refused(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the header must be id,kind,title"):
        import_history(db, clock, write(tmp_path, "h.csv", "id,title\n1,x\n"), actor=ACTOR)
    with pytest.raises(ConfigError, match="not a history export opsloop knows"):
        import_history(db, clock, write(tmp_path, "h.json", '{"things": []}'), actor=ACTOR)
    with pytest.raises(ConfigError, match="not JSON"):
        import_history(db, clock, write(tmp_path, "h.json", "{"), actor=ACTOR)


def pagerduty_export() -> dict[str, object]:
    """`GET /incidents` as PagerDuty's REST API v2 documents it (trimmed to the fields read)."""
    base = {"type": "incident", "urgency": "high", "status": "resolved",
            "service": {"id": "PSVC1", "type": "service_reference", "summary": "Checkout API"}}
    return {"incidents": [
        {**base, "id": "Q1AAA", "incident_number": 101, "title": "The server is on fire.",
         "created_at": "2026-10-06T21:30:42Z", "resolved_at": "2026-10-06T22:00:42Z",
         "priority": {"id": "P1ID", "type": "priority", "summary": "P1"}},
        {**base, "id": "Q1BBB", "incident_number": 102, "title": "Disk 91% full", "urgency": "low",
         "created_at": "2026-10-07T10:00:00Z", "last_status_change_at": "2026-10-07T12:00:00Z",
         "acknowledgements": [{"at": "2026-10-07T10:10:00Z", "acknowledger": {"id": "PUSER1"}}]},
        {**base, "id": "Q1CCC", "incident_number": 103, "title": "Still burning", "status": "acknowledged",
         "created_at": "2026-11-20T10:00:00Z"},
    ], "limit": 25, "offset": 0, "more": False}


def test_pagerduty_incidents_map_priority_urgency_service_and_skip_open_ones(db: Database, clock: FakeClock,
                                                                            tmp_path: Path) -> None:
    path = write(tmp_path, "incidents.json", json.dumps(pagerduty_export()))
    result = import_history(db, clock, path, actor=ACTOR)
    assert (result.source, result.created, result.skipped) == ("pagerduty", 2, {"not resolved (acknowledged)": 1})
    fire, disk = items(db)
    assert (fire.severity, fire.title, fire.labels["service"]) == ("sev1", "The server is on fire.", "Checkout API")
    assert fire.resolved_at == datetime(2026, 10, 6, 22, 0, 42, tzinfo=UTC)
    assert (disk.severity, disk.acknowledged_at, disk.resolved_at) == (
        "sev4", datetime(2026, 10, 7, 10, 10, tzinfo=UTC), datetime(2026, 10, 7, 12, tzinfo=UTC))


def test_pagerduty_analytics_raw_incidents(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    raw = {"data": [{"id": "Q2AAA", "incident_number": 7, "description": "API latency", "urgency": "high",
                     "priority_name": None, "service_name": "API", "created_at": "2026-10-01T00:00:00Z",
                     "seconds_to_first_ack": 120, "seconds_to_resolve": 3600}], "more": False}
    import_history(db, clock, write(tmp_path, "raw.json", json.dumps(raw)), actor=ACTOR)
    [item] = items(db)
    assert (item.severity, item.labels["service"]) == ("sev2", "API")
    assert (item.acknowledged_at, item.resolved_at) == (datetime(2026, 10, 1, 0, 2, tzinfo=UTC),
                                                        datetime(2026, 10, 1, 1, tzinfo=UTC))


def test_grafana_oncall_alert_groups(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """`GET /api/v1/alert_groups/` pages as Grafana OnCall's public API documents them."""
    group = {"id": "I68T24C13IFW1", "integration_id": "CFRPV98RPR1U8", "route_id": "RIYGUJXCPFHXY",
             "alerts_count": 3, "state": "resolved", "created_at": "2026-05-19T12:37:01.430444Z",
             "resolved_at": "2026-05-19T13:37:01.429805Z", "acknowledged_at": None, "acknowledged_by": None,
             "resolved_by": "UCGEIXI1MR1NZ", "title": "Memory above 90% threshold",
             "permalinks": {"slack": None}, "silenced_at": None}
    labelled = {**group, "id": "I2", "title": "Payments down",
                "labels": [{"key": {"id": "k", "name": "severity"}, "value": {"id": "v", "name": "critical"}}]}
    pages = [{"count": 3, "next": "page2", "results": [group, {**group, "id": "I3", "state": "firing"}]},
             {"count": 3, "next": None, "results": [labelled]}]
    result = import_history(db, clock, write(tmp_path, "alert_groups.json", json.dumps(pages)), actor=ACTOR)
    assert (result.source, result.created, result.skipped) == ("oncall", 2, {"not resolved (firing)": 1})
    by_title = {i.title: i for i in items(db)}
    assert (by_title["Memory above 90% threshold"].severity, by_title["Payments down"].severity) == ("sev3", "sev1")
    assert by_title["Memory above 90% threshold"].labels["imported_id"] == "I68T24C13IFW1"


def test_an_imported_id_keeps_its_kind(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    row = "k1,incident,T,sev2,,,2026-11-01T08:00:00Z,,2026-11-01T09:00:00Z\n"
    path = write(tmp_path, "h.csv", HEADER + row)
    import_history(db, clock, path, actor=ACTOR)
    write(tmp_path, "h.csv", HEADER + row.replace("incident", "escalation"))
    with pytest.raises(ConfigError, match="row 2: kind: 'k1' was imported as INC-1 \\(incident\\); its kind cannot change"):
        import_history(db, clock, path, actor=ACTOR)
