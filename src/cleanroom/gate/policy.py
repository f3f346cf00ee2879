"""Cedar policy sets: loaded from ``.cedar`` files, validated against the schema
before use, and versioned by content.

A policy set is a directory with one ``schema.cedarschema`` and any number of
``*.cedar`` files. Its version is ``sha256:<hex>`` of the files (names and
bytes, in name order): what the gate records with every decision and what a
release approves. Rules are named by their ``@id`` annotation; ``@obligation``
lists what the caller must do with data the rule allows (``mask:<field>``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cedarpy

from cleanroom.ledger.hashing import text_files_digest
from cleanroom.storage.errors import CleanroomError

SCHEMA_FILE = "schema.cedarschema"


class PolicyError(CleanroomError):
    """A policy set that does not parse or does not validate against its schema."""

    status = 422
    title = "Invalid policy set"


@dataclass(frozen=True)
class PolicyBundle:
    """A Cedar policy set with its schema, its version (digest) and the rule ids and
    obligations of its policies."""

    version: str
    files: dict[str, str]  # name -> text (the schema included)
    policies: cedarpy.PolicySet = field(repr=False)
    schema: cedarpy.Schema = field(repr=False)
    rule_ids: dict[str, str] = field(default_factory=dict)  # cedar id -> @id
    obligations: dict[str, tuple[str, ...]] = field(default_factory=dict)  # @id -> obligations

    @property
    def text(self) -> str:
        return "\n".join(self.files[n] for n in sorted(self.files) if n.endswith(".cedar"))


def version_of(files: dict[str, str]) -> str:
    """The policy set's digest: the same as its release artifact's (a dirhash
    of the files, ``ledger.hashing``), so a decision's ``policy_version``
    names an approved release."""
    return text_files_digest(files)


def load_files(files: dict[str, str]) -> PolicyBundle:
    """Parse and validate a policy set given as ``{file name: text}``."""
    if SCHEMA_FILE not in files:
        raise PolicyError(f"a policy set needs {SCHEMA_FILE}")
    cedar = [n for n in sorted(files) if n.endswith(".cedar")]
    if not cedar:
        raise PolicyError("a policy set needs at least one .cedar file")
    text = "\n".join(files[n] for n in cedar)
    try:
        schema = cedarpy.Schema.from_str(files[SCHEMA_FILE])
    except ValueError as exc:
        raise PolicyError(f"the schema does not parse: {_first_line(exc)}") from None
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        errors = "; ".join(str(e) for e in result.errors[:3])
        raise PolicyError(f"the policies do not validate against the schema: {errors}")
    try:
        policies = cedarpy.PolicySet.from_str(text)
        doc = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise PolicyError(f"the policies do not parse: {_first_line(exc)}") from None
    rule_ids: dict[str, str] = {}
    obligations: dict[str, tuple[str, ...]] = {}
    for pid, pol in doc["staticPolicies"].items():
        ann = pol.get("annotations", {})
        rid = ann.get("id")
        if not rid:
            raise PolicyError(f"every rule needs an @id annotation ({pid} has none)")
        if rid in obligations:
            raise PolicyError(f"two rules share the @id {rid!r}")
        rule_ids[pid] = rid
        obligations[rid] = tuple(
            o.strip() for o in ann.get("obligation", "").split(",") if o.strip()
        )
    return PolicyBundle(version_of(files), dict(files), policies, schema, rule_ids, obligations)


def load_dir(path: str | Path) -> PolicyBundle:
    p = Path(path)
    if not p.is_dir():
        raise PolicyError(f"{p} is not a directory of .cedar files and {SCHEMA_FILE}")
    files = {f.name: f.read_text() for f in p.iterdir() if f.suffix in (".cedar", ".cedarschema")}
    return load_files(files)


def shipped() -> PolicyBundle:
    """The policy set that ships with the clean room."""
    root = resources.files("cleanroom.gate") / "policies"
    files = {
        f.name: f.read_text() for f in root.iterdir() if f.name.endswith((".cedar", ".cedarschema"))
    }
    return load_files(files)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
