"""The "Clean Network" check: the providers a deployment runs on, screened.

A manifest (YAML) names the deployment's providers by kind::

    deployment: cleanroom-us-east
    jurisdiction: US
    providers:
      - {kind: cloud, name: Oracle Cloud Infrastructure, country: US}
      - {kind: cdn, name: Akamai Technologies, country: US}
      - {kind: equipment, name: Hangzhou Hikvision Digital Technology, product: cameras,
         category: video-surveillance, country: CN}
      - {kind: equipment, name: Acme Networks, category: router, country: TW}
    exceptions:
      - {provider: Acme Networks, approval: "DoW conditional approval 2026-04-01"}

Every provider is screened against the loaded lists (the FCC Covered List
among them); a cloud, hosting or CDN provider headquartered in China is
flagged for a U.S. deployment (Chinese cloud providers for U.S. data); an
equipment item of an FCC-covered category (routers, drones, power inverters,
robotic devices produced abroad) is flagged unless its exception is approved.
Flagged providers come with the list and the reason. The server refuses to
start on a manifest with a flagged provider that has no approved exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cleanroom.screen.errors import ManifestError
from cleanroom.screen.screener import Screener

KINDS = ("cloud", "cdn", "hosting", "peering", "carrier", "equipment", "app-store", "dns",
         "software", "other")  # fmt: skip
HOSTING_KINDS = ("cloud", "cdn", "hosting")
# Countries whose providers may not host a U.S. clean room's data (the DSP's
# countries of concern, 28 CFR 202.601).
COUNTRIES_OF_CONCERN = {
    "CN": "China", "HK": "Hong Kong", "MO": "Macau", "CU": "Cuba", "IR": "Iran",
    "KP": "North Korea", "RU": "Russia", "VE": "Venezuela",
}  # fmt: skip
_COUNTRY_NAMES = {v.casefold(): k for k, v in COUNTRIES_OF_CONCERN.items()} | {
    "prc": "CN", "people's republic of china": "CN", "russian federation": "RU",
    "dprk": "KP", "hong kong sar": "HK",
}  # fmt: skip
FCC_CATEGORIES = {"router": "router", "routers": "router", "uas": "uas", "drone": "uas",
                  "drones": "uas", "power-inverter": "power-inverter", "inverter": "power-inverter",
                  "robotics": "robotics", "robot": "robotics"}  # fmt: skip
MAX_PROVIDERS = 10_000


@dataclass(frozen=True)
class Provider:
    """A provider of the deployment: its kind, name, country and category."""

    kind: str
    name: str
    country: str = ""
    category: str = ""
    product: str = ""


@dataclass
class Manifest:
    """The deployment's infrastructure manifest: its providers and approved exceptions."""

    deployment: str
    jurisdiction: str
    providers: list[Provider]
    exceptions: dict[str, str] = field(default_factory=dict)  # provider name -> approval


@dataclass
class Finding:
    """One provider screened: flagged or not, why, by which lists."""

    provider: Provider
    flagged: bool
    reasons: list[str]
    lists: list[str]
    exception: str | None = None

    @property
    def blocking(self) -> bool:
        return self.flagged and self.exception is None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.provider.kind,
            "name": self.provider.name,
            "country": self.provider.country,
            "category": self.provider.category,
            "flagged": self.flagged,
            "lists": self.lists,
            "reasons": self.reasons,
            "exception": self.exception,
            "blocking": self.blocking,
        }


@dataclass
class InfraReport:
    """The manifest screened: every provider's finding and the list versions used."""

    manifest: Manifest
    findings: list[Finding]
    list_versions: dict[str, str]

    @property
    def flagged(self) -> list[Finding]:
        return [f for f in self.findings if f.flagged]

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def as_json(self) -> dict[str, Any]:
        return {
            "deployment": self.manifest.deployment,
            "jurisdiction": self.manifest.jurisdiction,
            "providers": len(self.findings),
            "flagged": len(self.flagged),
            "blocking": len(self.blocking),
            "ok": self.ok,
            "list_versions": self.list_versions,
            "findings": [f.as_json() for f in self.findings],
        }


def country_code(value: str) -> str:
    v = value.strip()
    if len(v) == 2:
        return v.upper()
    return _COUNTRY_NAMES.get(v.casefold(), v.upper())


def parse_manifest(text: str, source: str = "manifest") -> Manifest:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ManifestError(f"{source}: not YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: a manifest is a mapping with 'providers'")
    unknown = set(doc) - {"deployment", "jurisdiction", "providers", "exceptions"}
    if unknown:
        raise ManifestError(f"{source}: unknown keys {sorted(unknown)}")
    items = doc.get("providers")
    if not isinstance(items, list) or not items:
        raise ManifestError(f"{source}: 'providers' is a non-empty list")
    if len(items) > MAX_PROVIDERS:
        raise ManifestError(f"{source}: more than {MAX_PROVIDERS} providers")
    providers = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ManifestError(f"{source}: provider {n} is not a mapping")
        kind = str(item.get("kind", "")).strip().lower()
        name = str(item.get("name", "") or "").strip()
        if kind not in KINDS:
            raise ManifestError(
                f"{source}: provider {n} has kind {kind!r}", hint=f"kinds: {', '.join(KINDS)}"
            )
        if not name:
            raise ManifestError(f"{source}: provider {n} ({kind}) has no name")
        extra = set(item) - {"kind", "name", "country", "category", "product"}
        if extra:
            raise ManifestError(f"{source}: provider {n} ({name}) has unknown keys {sorted(extra)}")
        providers.append(
            Provider(
                kind,
                name,
                country_code(str(item.get("country", "") or "")),
                str(item.get("category", "") or "").strip().lower(),
                str(item.get("product", "") or "").strip(),
            )
        )
    exceptions: dict[str, str] = {}
    for n, e in enumerate(doc.get("exceptions") or [], 1):
        if not isinstance(e, dict) or not e.get("provider") or not e.get("approval"):
            raise ManifestError(f"{source}: exception {n} names a provider and its approval")
        exceptions[" ".join(str(e["provider"]).split()).casefold()] = str(e["approval"])
    return Manifest(
        str(doc.get("deployment") or source),
        str(doc.get("jurisdiction") or "US").upper(),
        providers,
        exceptions,
    )


def load_manifest(path: Path | str) -> Manifest:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read manifest {p}: {e}") from e
    return parse_manifest(text, p.name)


def check(manifest: Manifest, screener: Screener) -> InfraReport:
    findings = []
    for p in manifest.providers:
        reasons: list[str] = []
        lists: list[str] = []
        screening = screener.screen(p.name, "any")
        for h in screening.hits:
            if h.score >= screening.threshold:
                party = h.entry.party
                lists.append(h.entry.list_id)
                why = (
                    f"{party.name} is on the {h.entry.list_id} list"
                    f" ({', '.join(party.programs) or 'listed'}; score {h.score:.2f})"
                )
                if party.listed_on:
                    why += f", listed {party.listed_on}"
                reasons.append(why)
        for o in screening.ownership:
            reasons.append(f"owned by listed parties ({o['rule']}): {o['chain']}")
            lists.append(o["rule"])
        if (
            manifest.jurisdiction == "US"
            and p.kind in HOSTING_KINDS
            and p.country in COUNTRIES_OF_CONCERN
        ):
            reasons.append(
                f"a {p.kind} provider of {COUNTRIES_OF_CONCERN[p.country]} may not host U.S. data"
            )
            lists.append("country-of-concern")
        cat = FCC_CATEGORIES.get(p.category)
        if cat and p.country and p.country != manifest.jurisdiction:
            entry = screener.index.party("fcc-covered", f"fcc-category:{cat}")
            if entry is not None:
                reasons.append(
                    f"{entry.name}: FCC Covered List since {entry.listed_on}"
                    " (unless it has a conditional approval)"
                )
                lists.append("fcc-covered")
        exception = manifest.exceptions.get(" ".join(p.name.split()).casefold())
        flagged = bool(reasons)
        findings.append(
            Finding(p, flagged, reasons, sorted(set(lists)), exception if flagged else None)
        )
    return InfraReport(manifest, findings, screener.list_versions)
