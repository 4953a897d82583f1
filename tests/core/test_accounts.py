"""The account catalog: CSV or YAML in, accounts created or updated in place, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from opsloop.accounts import import_catalog
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.models import Account, AuditEvent
from tests.support import FakeClock

HEADER = "id,name,tier,arr,renewal_date,csm,sales_owner,support_channel,contact_email,region\n"


def test_csv_creates_then_updates_in_place(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(HEADER + "acme,Acme,enterprise,480000,2027-01-31,U0CSM1,U0S1,C0SUP,ops@acme.example,eu\n"
                    "globex,Globex,smb,1000,,,,,,\n")
    first = import_catalog(db, clock, path, actor="U0ADMIN")
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    path.write_text(HEADER + "acme,Acme,enterprise,500000,2027-01-31,U0CSM1,U0S1,C0SUP,ops@acme.example,eu\n"
                    "globex,Globex,smb,1000,,,,,,\n")
    second = import_catalog(db, clock, path, actor="U0ADMIN")
    assert (second.created, second.updated, second.unchanged) == (0, 1, 1)
    with db.transaction() as session:
        acme = session.get(Account, "acme")
        assert acme is not None and acme.arr == 500000 and str(acme.renewal_date) == "2027-01-31"
        update = session.exec(select(AuditEvent).where(AuditEvent.action == "account.updated")).one()
        assert (update.before, update.after) == ({"arr": 480000}, {"arr": 500000})


def test_yaml_catalog(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    path = tmp_path / "accounts.yml"
    path.write_text("- {id: initech, name: Initech, tier: mid-market, arr: 12000}\n")
    assert import_catalog(db, clock, path, actor="U0ADMIN").created == 1


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("acme,Acme,platinum,1,,,,,,", "row 2: tier: Input should be 'enterprise', 'mid-market' or 'smb'"),
        ("acme,Acme,smb,-5,,,,,,", "row 2: arr: Input should be greater than or equal to 0"),
        ("Acme Corp,Acme,smb,1,,,,,,", "row 2: id: String should match pattern"),
        ("acme,Acme,smb,1,31/01/2027,,,,,", "row 2: renewal_date"),
        ("acme,Acme,smb,1,,,,,not-an-email,", "row 2: contact_email"),
    ],
)
def test_bad_rows_are_refused_with_row_and_field_and_nothing_is_stored(
    db: Database, clock: FakeClock, tmp_path: Path, row: str, expected: str
) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(HEADER + row + "\ngood,Good,smb,1,,,,,,\n")
    with pytest.raises(ConfigError) as error:
        import_catalog(db, clock, path, actor="U0ADMIN")
    assert expected in str(error.value)
    with db.transaction() as session:
        assert session.exec(select(Account)).all() == []


def test_a_wrong_header_or_duplicate_id_is_refused(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("id,name,colour\nacme,Acme,red\n")
    with pytest.raises(ConfigError, match="the header must be"):
        import_catalog(db, clock, path, actor="U0ADMIN")
    path.write_text(HEADER + "acme,Acme,smb,1,,,,,,\nacme,Acme again,smb,1,,,,,,\n")
    with pytest.raises(ConfigError, match="row 3: id 'acme' appears twice"):
        import_catalog(db, clock, path, actor="U0ADMIN")
