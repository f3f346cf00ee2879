"""Re-deciding access entries: the oversight body fetches each released policy
set once (from the clean room's public release API), checks its content
against the digest the ledger released, and evaluates every access entry under
the policy version it cites — an allowed entry the policy would deny (or the
reverse) is an alert. Cedar is evaluated with ``cedarpy``, the same engine the
clean room uses, on the attributes the entry records."""

from __future__ import annotations

from typing import Any

import cedarpy
import httpx

from cleanroom.ledger.access import REQUEST_FIELDS, cedar_request
from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.hashing import text_files_digest


class PolicySource:
    """Released policy sets by digest, fetched over HTTP and checked."""

    def __init__(self, api_url: str, token: str, client: httpx.Client | None = None) -> None:
        self.url = api_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.http = client or httpx.Client(timeout=60)
        self._sets: dict[str, tuple[str, str]] = {}  # digest -> (policies, schema)

    def get(self, digest: str) -> tuple[str, str]:
        if digest not in self._sets:
            r = self.http.get(f"{self.url}/v1/releases/{digest}", headers=self.headers)
            if r.status_code != 200:
                raise LedgerError(f"policy release {digest}: HTTP {r.status_code}")
            files = r.json().get("manifest", {}).get("files", {})
            if text_files_digest(files) != digest:
                raise LedgerError(f"policy release {digest}: its files do not hash to it")
            policies = "\n".join(t for n, t in sorted(files.items()) if n.endswith(".cedar"))
            schema = next((t for n, t in files.items() if n.endswith(".cedarschema")), "")
            self._sets[digest] = (policies, schema)
        return self._sets[digest]


def redecide(entry: dict[str, Any], policies: str, schema: str) -> bool | None:
    """Whether the policy allows what the entry records (None: the entry lacks
    the attributes, or the clean room decided it outside the policy — several
    jurisdictions in one request are refused before Cedar is asked). The
    request is rebuilt from the entry by the ledger's one definition of it
    (``cleanroom.ledger.access``), the one the gate decided with."""
    if any(k not in entry for k in REQUEST_FIELDS) or entry.get("rules") == [
        "one-jurisdiction-per-request"
    ]:
        return None
    request, entities = cedar_request(entry)
    result = cedarpy.is_authorized(request, policies, entities, schema)
    if result.diagnostics.errors:
        return False  # fail closed, as the gate does
    return bool(result.allowed)
