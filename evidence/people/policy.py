"""Who may do what: the one place where every request is decided. Deny by default.

An actor is a person (with roles, and the cases assigned to them) or a device.
A request is an action, and for actions on a case's evidence, that case. The
rule for each action is one line of `RULES`; anything not listed is denied.

| action          | allowed for                                                     |
|-----------------|-----------------------------------------------------------------|
| cases.list      | any person (each sees the cases the table below lets them see)  |
| case.read       | worker, supervisor, reviewer, disclosure assigned to the case   |
| item.read       | as case.read: an item's metadata (where and when it was         |
|                 | captured: personal data), device-chain findings included        |
| item.custody    | as case.read, and an auditor for every item: every entry about  |
|                 | the item, with proofs, and who made them                        |
| item.content    | as case.read (never an auditor, never an admin)                 |
| item.upload     | a device, to a case assigned to the worker it is assigned to    |

Admins manage people, devices and assignments from the command line; they do
not see evidence by virtue of being admins. Auditors read the log and custody
histories (the entries, which hold no personal data in clear, and the names of
the people who made them: auditing access means knowing who), and nothing else:
not the cases' references, not where or when an item was captured, not its
content.

Known but forbidden is 403, not 404. The web API answers 401 to nobody, then
404 for a case or item that does not exist, then 403 for one that exists but
that this table does not allow. Hiding existence behind a 404 would protect
nothing: case and item ids are opaque random or SHA-256 values, and the public
log's ``item.ingested`` entries already name every item and its case. A 403
tells a person that the thing is there and that they need an assignment for
it, which is what they need to know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from evidence.errors import Forbidden
from evidence.ids import UserId

ROLES = ("admin", "supervisor", "worker", "reviewer", "disclosure", "auditor")
CASE_ROLES = frozenset({"worker", "supervisor", "reviewer", "disclosure"})


@dataclass(frozen=True)
class Actor:
    """Who is asking: a person (`kind` "user") or a device, with what they are assigned."""

    id: str
    kind: str  # "user" | "device"
    roles: frozenset[str] = frozenset()
    cases: frozenset[str] = field(
        default_factory=frozenset
    )  # assigned (for a device: its worker's)

    @property
    def user_id(self) -> UserId:
        """The person's id; `Forbidden` for a device (only people view, export, review)."""
        if self.kind != "user":
            raise Forbidden("only a person may do this, not a device")
        return UserId(self.id)


def _assigned_in_role(actor: Actor, case: str | None) -> bool:
    return actor.kind == "user" and bool(actor.roles & CASE_ROLES) and case in actor.cases


def _reads_custody(actor: Actor, case: str | None) -> bool:
    return _assigned_in_role(actor, case) or (actor.kind == "user" and "auditor" in actor.roles)


Rule = Callable[[Actor, "str | None"], bool]

RULES: dict[str, Rule] = {
    "cases.list": lambda actor, _case: actor.kind == "user",
    "case.read": _assigned_in_role,
    "item.read": _assigned_in_role,
    "item.custody": _reads_custody,
    "item.content": _assigned_in_role,
    "item.upload": lambda actor, case: actor.kind == "device" and case in actor.cases,
}


def is_allowed(actor: Actor | None, action: str, case: str | None = None) -> bool:
    """Whether `actor` may do `action` (on `case`): False for anyone or anything unknown."""
    rule = RULES.get(action)
    return actor is not None and rule is not None and rule(actor, case)


def visible_cases(actor: Actor, all_cases: list[str]) -> list[str]:
    """The cases `actor` may see in a listing: those `case.read` allows."""
    return [case for case in all_cases if is_allowed(actor, "case.read", case)]
