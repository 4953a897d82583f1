"""People in Slack mode: checked with users.info and users.list on the mock Web API, never guessed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import func, select

from bot.bootstrap import Services
from bot.slack.directory import SlackDirectory
from bot.slack.sender import web_client
from opsloop.authz import Person
from opsloop.errors import DirectoryUnavailable, NotFound
from opsloop.models import WorkItem
from opsloop.people import People
from tests.bot.live_server import LiveServer
from tests.bot.mock_slack import MockSlack
from tests.bot.slack_requests import command_body
from tests.bot.test_slack_http import answered

COMMANDER = "U0RESP1"


@pytest.fixture
def workspace() -> Iterator[MockSlack]:
    mock = MockSlack(users={f"U0P{n:03d}": f"person{n}" for n in range(250)}
                     | {"U0ANN": "ann", "U0ANN2": "Ann", "U0GONE": "-gone"}).start()
    yield mock
    mock.stop()


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def directory(mock: MockSlack, ticks: Ticks | None = None) -> SlackDirectory:
    return SlackDirectory(web_client("xoxb-test", mock.api_url, timeout=2), monotonic=ticks or Ticks())


def test_a_person_is_checked_by_id_and_a_deactivated_account_is_nobody(workspace: MockSlack) -> None:
    slack = directory(workspace)
    assert slack.person("U0P007") == Person("U0P007", "person7")
    assert slack.person("U0NOBODY") is None
    assert slack.person("U0GONE") is None
    slack.person("U0P007")  # kept: no second call
    assert [c.params["user"] for c in workspace.all_calls("users.info")] == ["U0P007", "U0NOBODY", "U0GONE"]


def test_a_name_is_looked_up_across_every_page_of_users_list(workspace: MockSlack) -> None:
    slack = directory(workspace)
    assert slack.find("person249") == [Person("U0P249", "person249")]
    assert len(workspace.all_calls("users.list")) == 2  # 253 people, 200 a page
    assert {p.id for p in slack.find("ANN")} == {"U0ANN", "U0ANN2"}  # any case: both
    assert slack.find("gone") == []
    assert len(workspace.all_calls("users.list")) == 2  # the list is kept for a while


def test_people_refuses_strangers_and_names_that_fit_several(workspace: MockSlack,
                                                             slack_services: Services) -> None:
    slack_services.authz.directory = directory(workspace)
    people = People(slack_services.authz)
    assert people.person("<@U0P001|whoever>") == "U0P001"
    assert people.person("@person2") == "U0P002"
    with pytest.raises(NotFound, match="unknown user U0NOBODY: nobody in this Slack workspace has that id"):
        people.person("U0NOBODY")
    with pytest.raises(NotFound, match="@ann could be <@U0ANN>, <@U0ANN2>: mention the one you mean"):
        people.person("@ann")


def test_when_slack_cannot_be_asked_nobody_is_taken_on_a_guess(workspace: MockSlack) -> None:
    ticks = Ticks()
    slack = directory(workspace, ticks)
    assert slack.person("U0P001") is not None
    workspace.down = True
    with pytest.raises(DirectoryUnavailable, match="cannot check that user with Slack right now"):
        slack.person("U0P002")
    with pytest.raises(DirectoryUnavailable, match="cannot look people up in Slack right now"):
        slack.find("person3")
    ticks.now = 1000.0  # long after: what was known stands in while Slack is down
    assert slack.person("U0P001") == Person("U0P001", "person1")


def test_assigning_a_stranger_through_slack_is_refused_and_changes_nothing(
    server: LiveServer, mock_slack: MockSlack, slack_services: Services
) -> None:
    slack_services.workitems.declare(actor=COMMANDER, title="Disk full")
    refused = answered(server.post(command_body("/incident", "assign INC-1 <@U0NOBODY|nobody>", user=COMMANDER,
                                                respond_to=mock_slack.url)), mock_slack)
    assert refused == "✗ unknown user U0NOBODY: nobody in this Slack workspace has that id"
    assert slack_services.workitems.get("INC-1").item.owner == COMMANDER
    done = answered(server.post(command_body("/incident", "assign INC-1 @bob", user=COMMANDER,
                                             respond_to=mock_slack.url)), mock_slack)
    assert done == "INC-1: owner is now <@U0RESP2>"
    with slack_services.db.transaction() as session:
        assert session.exec(select(func.count()).select_from(WorkItem)).one() == 1
