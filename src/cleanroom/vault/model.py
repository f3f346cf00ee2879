"""The records the vault holds, the data class of every field, and input checks.

Data classes (DESIGN: who may see what):

- ``protected``: personal data; stored encrypted under the owner's data key,
  read only through the gate, never leaves the clean room;
- ``interoperable``: public videos and a user's public profile; may be shared
  under policy;
- ``aggregate``: counts and statistics over many users; for researchers and
  exports with a minimum group size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from cleanroom.storage.errors import CleanroomError

DataClass = Literal["protected", "interoperable", "aggregate"]

PROTECTED_PROFILE_FIELDS = (
    "handle",
    "email",
    "phone",
    "birth_year",
    "device_id",
    "ip_address",
    "precise_location",
)
PUBLIC_PROFILE_FIELDS = ("display_name", "bio", "language")

EVENT_KINDS = (
    "impression",
    "view",
    "like",
    "share",
    "comment",
    "follow",
    "skip",
    "not_interested",
)

# Every field of every record, with its data class. The API documents it and a
# test checks that each field the vault stores is listed here.
FIELD_CLASSES: dict[str, dict[str, DataClass]] = {
    "user": {
        "id": "protected",
        "jurisdiction": "aggregate",
        **{f: "protected" for f in PROTECTED_PROFILE_FIELDS},
        **{f: "interoperable" for f in PUBLIC_PROFILE_FIELDS},
        "synthetic": "interoperable",
    },
    "video": {
        "id": "interoperable",
        "creator": "interoperable",
        "topics": "interoperable",
        "language": "interoperable",
        "region": "interoperable",
        "public": "interoperable",
        "created_ms": "interoperable",
    },
    "event": {
        "id": "protected",
        "user": "protected",
        "video": "protected",
        "kind": "protected",
        "watch_ms": "protected",
        "ts_ms": "protected",
        "context": "protected",
    },
    # Counts over many users (popularity, exposure) are aggregates.
    "aggregate": {"count": "aggregate"},
}

MAX_ID = 128
MAX_TEXT = 1000
MAX_CONTEXT_BYTES = 2048
_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_JURISDICTION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


class InvalidRecord(CleanroomError):
    """A user, video or event does not have the required shape."""

    status = 422
    title = "Invalid record"


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidRecord(
            f"{what} must be 1-{MAX_ID} characters of letters, digits and . _ : @ -",
            hint=f"got {str(value)[:40]!r}",
        )
    return value


def check_jurisdiction(value: Any) -> str:
    if not isinstance(value, str) or not _JURISDICTION.match(value):
        raise InvalidRecord(
            f"jurisdiction must be an ISO 3166 code like 'US' or 'US-CA', got {value!r}"
        )
    return value


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidRecord(f"{what} must be a string of at most {limit} characters")
    return value


@dataclass(frozen=True)
class User:
    """A user's record: protected profile, public profile, jurisdiction."""

    id: str
    jurisdiction: str
    profile: dict[str, Any] = field(default_factory=dict)  # protected fields
    public: dict[str, Any] = field(default_factory=dict)  # public profile
    synthetic: bool = False

    @classmethod
    def parse(cls, user_id: str, doc: dict[str, Any]) -> User:
        check_id(user_id, "user id")
        if not isinstance(doc, dict):
            raise InvalidRecord("a user must be a JSON object")
        known = {"jurisdiction", "profile", "public", "synthetic"}
        if extra := set(doc) - known:
            raise InvalidRecord(f"unknown user fields: {sorted(extra)}")
        profile = doc.get("profile") or {}
        public = doc.get("public") or {}
        if not isinstance(profile, dict) or not isinstance(public, dict):
            raise InvalidRecord("profile and public must be JSON objects")
        if extra := set(profile) - set(PROTECTED_PROFILE_FIELDS):
            raise InvalidRecord(
                f"unknown profile fields: {sorted(extra)}",
                hint=f"protected fields are {', '.join(PROTECTED_PROFILE_FIELDS)}",
            )
        if extra := set(public) - set(PUBLIC_PROFILE_FIELDS):
            raise InvalidRecord(
                f"unknown public profile fields: {sorted(extra)}",
                hint=f"public fields are {', '.join(PUBLIC_PROFILE_FIELDS)}",
            )
        for k, v in profile.items():
            if k == "birth_year":
                if not isinstance(v, int) or isinstance(v, bool) or not 1900 <= v <= 2100:
                    raise InvalidRecord("birth_year must be an integer year")
            elif k == "precise_location":
                if not (
                    isinstance(v, dict)
                    and set(v) == {"lat", "lon"}
                    and all(isinstance(x, int | float) for x in v.values())
                    and -90 <= v["lat"] <= 90
                    and -180 <= v["lon"] <= 180
                ):
                    raise InvalidRecord("precise_location must be {lat, lon} in degrees")
            else:
                _text(v, k, 320)
        for k, v in public.items():
            _text(v, k)
        synthetic = doc.get("synthetic", False)
        if not isinstance(synthetic, bool):
            raise InvalidRecord("synthetic must be true or false")
        return cls(
            user_id,
            check_jurisdiction(doc.get("jurisdiction")),
            dict(profile),
            dict(public),
            synthetic,
        )

    def to_doc(self) -> dict[str, Any]:
        """The body of ``PUT /v1/users/{id}`` that gives this record."""
        return {"jurisdiction": self.jurisdiction, "profile": self.profile,
                "public": self.public, "synthetic": self.synthetic}  # fmt: skip


@dataclass(frozen=True)
class Video:
    """A video of the catalogue: creator, topics, language, upload time."""

    id: str
    creator: str
    topics: tuple[str, ...] = ()
    language: str | None = None
    region: str | None = None
    public: bool = True
    created_ms: int = 0

    @classmethod
    def parse(cls, doc: Any) -> Video:
        if not isinstance(doc, dict):
            raise InvalidRecord("a video must be a JSON object")
        known = {"id", "creator", "topics", "language", "region", "public", "created_ms"}
        if extra := set(doc) - known:
            raise InvalidRecord(f"unknown video fields: {sorted(extra)}")
        topics = doc.get("topics", [])
        if not isinstance(topics, list) or len(topics) > 32:
            raise InvalidRecord("topics must be a list of at most 32 strings")
        public = doc.get("public", True)
        created = doc.get("created_ms", 0)
        if not isinstance(public, bool):
            raise InvalidRecord("public must be true or false")
        if not isinstance(created, int) or isinstance(created, bool) or created < 0:
            raise InvalidRecord("created_ms must be a non-negative integer (ms since epoch)")
        lang, region = doc.get("language"), doc.get("region")
        return cls(
            check_id(doc.get("id"), "video id"),
            check_id(doc.get("creator"), "creator id"),
            tuple(_text(t, "topic", 64) for t in topics),
            None if lang is None else _text(lang, "language", 16),
            None if region is None else check_jurisdiction(region),
            public,
            created,
        )

    def to_dict(self) -> dict[str, Any]:
        """The video as ``POST /v1/videos`` takes it."""
        out: dict[str, Any] = {"id": self.id, "creator": self.creator, "topics": list(self.topics),
                               "public": self.public, "created_ms": self.created_ms}  # fmt: skip
        if self.language is not None:
            out["language"] = self.language
        if self.region is not None:
            out["region"] = self.region
        return out


def _json_size(value: Any) -> int:
    """Bytes of the compact UTF-8 JSON of ``value`` (what the vault stores);
    a value that is not JSON — NaN, an integer beyond 64 bits — is refused."""
    stack = [value]
    while stack:  # (orjson would write NaN and infinities as null)
        v = stack.pop()
        if type(v) is float and not math.isfinite(v):
            raise InvalidRecord("context must hold JSON values only (no NaN or infinity)")
        if type(v) is dict:
            stack.extend(v.values())
        elif type(v) is list:
            stack.extend(v)
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        raise InvalidRecord("context must hold JSON values only") from None


EVENT_FIELDS = frozenset(("id", "user", "video", "kind", "ts_ms", "watch_ms", "context"))


@dataclass(frozen=True)
class Event:
    """One engagement of a user with a video."""

    id: str
    user: str
    video: str
    kind: str
    ts_ms: int
    watch_ms: int = 0
    context: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: Any) -> Event:
        if not isinstance(doc, dict):
            raise InvalidRecord("an event must be a JSON object")
        if extra := doc.keys() - EVENT_FIELDS:
            raise InvalidRecord(f"unknown event fields: {sorted(extra)}")
        kind = doc.get("kind")
        if kind not in EVENT_KINDS:
            raise InvalidRecord(f"event kind {kind!r} is not one of {', '.join(EVENT_KINDS)}")
        ts, watch = doc.get("ts_ms"), doc.get("watch_ms", 0)
        for name, v in (("ts_ms", ts), ("watch_ms", watch)):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**53:
                raise InvalidRecord(f"{name} must be a non-negative integer in ms")
        context = doc.get("context") or {}
        if not isinstance(context, dict) or (context and _json_size(context) > MAX_CONTEXT_BYTES):
            raise InvalidRecord(f"context must be an object of at most {MAX_CONTEXT_BYTES} bytes")
        return cls(
            check_id(doc.get("id"), "event id"),
            check_id(doc.get("user"), "user id"),
            check_id(doc.get("video"), "video id"),
            kind,
            ts,
            watch,
            context,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "video": self.video,
            "kind": self.kind,
            "ts_ms": self.ts_ms,
            "watch_ms": self.watch_ms,
            "context": self.context,
        }
