"""The scheduler takes audit checkpoints and applies retention; the file transport writes the copies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.bootstrap import Services, bootstrap
from bot.scheduler import CHECKPOINT_JOB, RETENTION_JOB, build_scheduler, stop_scheduler
from bot.senders.file import FileSender
from bot.settings import Settings
from opsloop.compliance import checkpoints
from opsloop.compliance.models import AuditCheckpoint, ComplianceRun
from opsloop.compliance.signing import Verifier, generate
from opsloop.models import OutboxMessage
from opsloop.outbox import DeliveryError, Dispatcher, PermanentDeliveryError
from tests.support import ROOT, FakeClock, wait_until


@pytest.fixture
def keyed_services(db_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Services, Verifier, Path]]:
    private, public = generate(tmp_path / "keys")
    copies = tmp_path / "copies"
    policy = tmp_path / "opsloop.yml"
    policy.write_text((ROOT / "opsloop.yml").read_text()
                      .replace("checkpoint_to: audit-checkpoints", f"checkpoint_to: {copies}")
                      .replace("accounts: accounts.yml", f"accounts: {ROOT / 'accounts.yml'}"))
    settings = Settings(database_url=db_url, config=policy, runbooks_dir=ROOT / "runbooks",
                        audit_signing_key=private)
    services = bootstrap(settings, clock=clock)
    yield services, Verifier.load(public), copies
    services.db.dispose()


def test_the_scheduler_signs_a_checkpoint_and_applies_retention_at_once(
        keyed_services: tuple[Services, Verifier, Path]) -> None:
    services, public, copies = keyed_services
    scheduler = build_scheduler(services, interval=0.05)
    assert {CHECKPOINT_JOB, RETENTION_JOB} <= {job.id for job in scheduler.get_jobs()}
    scheduler.start()
    try:
        done: tuple[list[AuditCheckpoint], list[ComplianceRun]] = ([], [])

        def both_ran() -> bool:
            nonlocal done
            with services.db.transaction() as session:
                done = (list(session.exec(select(AuditCheckpoint))), list(session.exec(select(ComplianceRun))))
            return len({r.job for r in done[1]}) >= 2

        wait_until(both_ran, what="the checkpoint and retention jobs", poll=0.05)
    finally:
        stop_scheduler(scheduler)
    checkpoint_rows, runs = done
    assert [c.trigger for c in checkpoint_rows] == ["periodic"]
    assert sorted(r.job for r in runs) == ["audit.checkpoint", "retention"]
    Dispatcher(services.db, {"file": FileSender()}, services.clock).drain()
    reading = checkpoints.read_directory(copies, [public])
    assert reading.problems == [] and [a.seq for a in reading.anchors] == [checkpoint_rows[0].seq]


def test_without_a_key_no_checkpoint_job_is_scheduled(services: Services) -> None:
    assert CHECKPOINT_JOB not in {job.id for job in build_scheduler(services).get_jobs()}


def test_the_file_transport_never_replaces_a_copy_and_retries_what_may_pass(tmp_path: Path) -> None:
    sender = FileSender()
    message = OutboxMessage(key="k", transport="file", target=str(tmp_path / "d"), lane="file:d",
                            payload={"name": "c.json", "content": "one"})
    assert sender.send(message, None).external_id == "c.json"
    assert sender.send(message, None).external_id == "c.json"  # delivered twice: the same bytes
    message.payload = {"name": "c.json", "content": "two"}
    with pytest.raises(PermanentDeliveryError, match="never overwritten"):
        sender.send(message, None)
    (tmp_path / "file").write_text("")
    blocked = OutboxMessage(key="b", transport="file", target=str(tmp_path / "file" / "sub"), lane="file:x",
                            payload={"name": "c.json", "content": "x"})
    with pytest.raises(DeliveryError, match="cannot write into"):
        sender.send(blocked, None)
    assert (tmp_path / "d" / "c.json").read_text() == "one"
