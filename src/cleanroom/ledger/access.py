"""The ``access`` entry's request: the fields the gate records for every
decision and the Cedar request they stand for.

The gate builds the request it asks Cedar from the fields it writes into the
entry (``request_fields`` then ``cedar_request``); the oversight body rebuilds
the same request from the entry it read (``cedar_request`` on the entry) and
re-decides it. One definition, in the ledger both sides import, so the
recorded request and the decided one cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the fields of an access entry that make up its Cedar request
REQUEST_FIELDS = (
    "principal", "kind", "org", "role", "principal_jurisdiction", "clearance",
    "action", "resource", "data_class", "jurisdiction", "purpose", "self_access",
)  # fmt: skip


def request_fields(
    principal: Any,
    action: str,
    resource: str,
    data_class: str,
    jurisdiction: str,
    purpose: str,
    self_access: bool,
) -> dict[str, Any]:
    """The request part of an access entry, for a principal (anything with
    ``name``, ``kind``, ``org``, ``role``, ``jurisdiction`` and ``clearance``)."""
    p = principal
    values = (p.name, p.kind, p.org, p.role, p.jurisdiction, p.clearance,
              action, resource, data_class, jurisdiction, purpose, self_access)  # fmt: skip
    return dict(zip(REQUEST_FIELDS, values, strict=True))


def principal_entity(uid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The Cedar entity of the principal an access entry names."""
    return {
        "uid": {"type": "Principal", "id": uid},
        "attrs": {
            "kind": fields["kind"],
            "org": fields["org"],
            "role": fields["role"],
            "jurisdiction": fields["principal_jurisdiction"],
            "clearance": fields["clearance"],
        },
        "parents": [],
    }


def resource_entity(resource: str, data_class: str, jurisdiction: str) -> dict[str, Any]:
    """The Cedar entity of the records a request reaches (one per request)."""
    return {
        "uid": {"type": resource, "id": "request"},
        "attrs": {"data_class": data_class, "jurisdiction": jurisdiction},
        "parents": [],
    }


def request_of(uid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The Cedar request (principal, action, resource, context) of the fields."""
    return {
        "principal": {"type": "Principal", "id": uid},
        "action": {"type": "Action", "id": fields["action"]},
        "resource": {"type": fields["resource"], "id": "request"},
        "context": {"purpose": fields["purpose"], "self_access": fields["self_access"]},
    }


def cedar_request(fields: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Cedar request and entities an access entry (or the fields the gate is
    about to record) stands for. Raises KeyError when a field is missing."""
    uid = fields["principal"]
    entities = [
        principal_entity(uid, fields),
        resource_entity(fields["resource"], fields["data_class"], fields["jurisdiction"]),
    ]
    return request_of(uid, fields), entities
