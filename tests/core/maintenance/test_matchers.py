"""Alertmanager's matcher syntax, as a window reads it."""

from __future__ import annotations

import pytest

from opsloop.errors import InvalidInput
from opsloop.maintenance.matchers import check_set, parse_matcher

LABELS = {"service": "checkout", "env": "prod-eu", "team": "payments", "empty": ""}


@pytest.mark.parametrize(("text", "matches"), [
    ("service=checkout", True),
    ("service=check", False),              # equality is exact
    ("service!=checkout", False),
    ("service!=search", True),
    ("env=~prod-.*", True),
    ("env=~prod", False),                  # anchored at both ends, as in Alertmanager
    ("env=~.*eu", True),
    ("env=~staging|prod-eu", True),
    ("env!~prod-.*", False),
    ("env!~staging.*", True),
    ("region=", True),                     # a label the alert does not carry reads as empty
    ("region!=", False),
    ("region=~eu.*", False),
    ("region!~eu.*", True),
    ("empty=", True),
    ("team=payments", True),
    ('service=~"check(out|in)"', False),   # quotes inside a word are part of the value once read
])
def test_each_operator_matches_as_alertmanager_does(text: str, matches: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is matches


def test_the_operator_is_read_longest_first() -> None:
    assert (parse_matcher("a=~b").op, parse_matcher("a=~b").value) == ("=~", "b")
    assert (parse_matcher("a!=b").op, parse_matcher("a!~b").op, parse_matcher("a==b").value) == ("!=", "!~", "=b")


@pytest.mark.parametrize(("text", "reason"), [
    ("service", "is not a matcher"),
    ("=checkout", "is not a matcher"),
    ("1service=x", "is not a matcher"),
    ("service~=x", "is not a matcher"),
    ("env=~prod(", "invalid regular expression"),
    ("env=" + "x" * 1001, "at most 1000"),
])
def test_bad_matchers_are_refused_in_english(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_matcher(text)


def test_a_set_must_name_something() -> None:
    with pytest.raises(InvalidInput, match="at least one matcher"):
        check_set([])
    with pytest.raises(InvalidInput, match="match every alert"):
        check_set([parse_matcher("env=~.*"), parse_matcher("team!=x")])
    with pytest.raises(InvalidInput, match="at most 20"):
        check_set([parse_matcher(f"l{i}=x") for i in range(21)])
    assert [str(m) for m in check_set([parse_matcher("env=~.*"), parse_matcher("service=a"),
                                       parse_matcher("service=a")])] == ['env=~".*"', 'service="a"']


def test_a_silence_carries_the_same_meaning() -> None:
    assert parse_matcher("env!~prod.*").to_silence() == {"name": "env", "value": "prod.*", "isRegex": True,
                                                         "isEqual": False}
    assert parse_matcher("team=web").to_silence() == {"name": "team", "value": "web", "isRegex": False,
                                                      "isEqual": True}
