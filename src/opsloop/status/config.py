"""The `status` section of the policy file: where status pages live and what each tier is promised.

    status:
      base_url: https://status.example.com      # default: opsloop serve's own address
      contract: {enterprise: 99.99%, mid-market: 99.9%, smb: 99.5%}

`base_url` starts every link `opsloop status link TENANT` prints (put the
public address of `opsloop serve`, or of the proxy in front of it, here);
`contract` is the availability each tier is promised over 90 days, shown on
the tenant's page, in `/health ACCOUNT` and in the digest beside what it got.
Owned here; `opsloop.policy` imports it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from opsloop.fields import Strict
from opsloop.types import Tier

_PERCENT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*%?\s*")


def _percent(value: Any) -> float:
    """`99.99`, `99.99%` or `"99.9 %"` -> 99.99; a share (0.999) is refused, it would promise 1%."""
    if isinstance(value, bool):
        raise ValueError("write the availability as a percentage, e.g. 99.9%")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _PERCENT.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(f"{value!r} is not a percentage (write e.g. 99.9%)")
        number = float(match.group(1))
    if not 50 <= number <= 100:
        raise ValueError(f"{number:g}% is no availability target (write a percentage from 50% to 100%, "
                         "e.g. 99.9%)")
    return number


Percent = Annotated[float, BeforeValidator(_percent)]


class StatusPolicy(Strict):
    # the public address of the status pages' server: `https://host[:port][/prefix]`, no query
    base_url: Annotated[str, Field(pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")] | None = None
    contract: dict[Tier, Percent] = {}

    def promised(self, tier: str) -> float | None:
        """The availability (percent) promised to a tier, or None when the policy promises none."""
        for name, percent in self.contract.items():
            if name.value == tier:
                return percent
        return None
