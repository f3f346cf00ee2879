"""Residency: where the data sits, under which jurisdiction and which operator.

Every storage site is tagged with a jurisdiction and an operator in the
configuration. The vault stores a user's protected data only at a site of the
user's home jurisdiction, and the server refuses to start on a site that the
residency policy does not allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cleanroom.storage.errors import CleanroomError
from cleanroom.vault.model import check_jurisdiction


class ResidencyError(CleanroomError):
    """Data would be stored, or a server run, outside what the policy allows."""

    status = 422
    title = "Residency violation"


@dataclass(frozen=True)
class Site:
    """Where this clean room runs: name, jurisdiction, operator."""

    name: str
    jurisdiction: str
    operator: str

    def __post_init__(self) -> None:
        check_jurisdiction(self.jurisdiction)
        if not self.name or not self.operator:
            raise ResidencyError("a site needs a name and an operator")


@dataclass(frozen=True)
class ResidencyPolicy:
    """The jurisdictions and operators the data may live with."""

    jurisdictions: tuple[str, ...] = field(default=("US",))
    operators: tuple[str, ...] = field(default=("trusted-operator",))

    def check_site(self, site: Site) -> None:
        """Raise unless ``site`` may hold the clean room's data and run its server."""
        if site.jurisdiction not in self.jurisdictions:
            raise ResidencyError(
                f"site {site.name!r} is in {site.jurisdiction}, which the residency policy "
                f"does not allow (allowed: {', '.join(self.jurisdictions)})",
                hint="run the clean room on a site of an allowed jurisdiction",
            )
        if site.operator not in self.operators:
            raise ResidencyError(
                f"site {site.name!r} is run by {site.operator!r}, which the residency policy "
                f"does not allow (allowed: {', '.join(self.operators)})",
                hint="only the trusted operator may run the clean room",
            )

    def check_store(self, site: Site, jurisdiction: str) -> None:
        """Raise unless a user of ``jurisdiction`` may have data stored at ``site``."""
        if jurisdiction != site.jurisdiction:
            raise ResidencyError(
                f"a user of {jurisdiction} cannot be stored at site {site.name!r} "
                f"({site.jurisdiction}): protected data stays in its home jurisdiction"
            )
