"""The data directory: configuration, keys and the embedded database.

Layout (default ``./.cleanroom``, or ``--data-dir`` / ``CLEANROOM_DATA_DIR``)::

    config.json        origin, database URL, witnesses the log asks to cosign,
                       this site (name, jurisdiction, operator), the residency policy
    cleanroom.db       the embedded SQLite database (when no URL is configured)
    keys/log.key       the log's signed-note signer key (mode 0600)
    keys/witness.key   this node's witness key, if it runs a witness (mode 0600)
    keys/oversight-root.key  a development oversight root key, only when init was
                       not given the oversight body's own (--oversight-vkey)
    keys/keyring.json  the key-encryption keys of the local KMS (mode 0600)
    keys/subject-keys.db  wrapped per-user data keys and commitment salts
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cleanroom.errors import ConfigError
from cleanroom.ledger.note import Signer, parse_signer
from cleanroom.storage import Database, sqlite_url
from cleanroom.storage.secrets import read_secret, write_secret

DEFAULT_DATA_DIR = ".cleanroom"
DEFAULT_ORIGIN = "cleanroom.example/log"
DEFAULT_JURISDICTION = "US"
DEFAULT_OPERATOR = "trusted-operator"


@dataclass
class SiteConfig:
    """This site: its name, jurisdiction and operator."""

    name: str = "site-1"
    jurisdiction: str = DEFAULT_JURISDICTION
    operator: str = DEFAULT_OPERATOR


@dataclass
class ResidencyConfig:
    """Where the data may live: the jurisdictions and operators allowed."""

    jurisdictions: list[str] = field(default_factory=lambda: [DEFAULT_JURISDICTION])
    operators: list[str] = field(default_factory=lambda: [DEFAULT_OPERATOR])


@dataclass
class WitnessRef:
    """A witness the log asks to cosign: its verifier key and URL."""

    vkey: str
    url: str


@dataclass
class ScreeningConfig:
    # The BIS Affiliates Rule applies from this day (ISO date; None: never).
    # Published 29 Sep 2025 and suspended for a year from 10 Nov 2025; the
    # operator sets the date in force.
    """Screening settings: the affiliates rule's start, the smallest exported group, the
    infrastructure manifest."""

    affiliates_rule_from: str | None = "2026-11-10"
    # Smallest group an exported aggregate may report.
    min_group_size: int = 10
    # The deployment's infrastructure manifest (YAML), checked at every start.
    infra_manifest: str | None = None


@dataclass
class Config:
    """A data directory's configuration (config.json)."""

    origin: str = DEFAULT_ORIGIN
    database_url: str | None = None
    witnesses: list[WitnessRef] = field(default_factory=list)
    site: SiteConfig = field(default_factory=SiteConfig)
    residency: ResidencyConfig = field(default_factory=ResidencyConfig)
    # Where the wrapped subject keys live (default: keys/subject-keys.db, inside
    # the KMS boundary and apart from the records they protect).
    keystore_url: str | None = None
    screening: ScreeningConfig = field(default_factory=ScreeningConfig)
    # The oversight body's root public key (signed-note vkey), pinned at init:
    # only statements it signs add or remove oversight reviewers and principals.
    oversight_vkey: str | None = None
    # Shared by the nodes of a cluster (None: this process alone, the embedded
    # default): the event bus (nats://HOST:PORT) and the users' online state
    # (redis://HOST:PORT/N).
    bus_url: str | None = None
    state_url: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            d = json.loads(text)
            return cls(
                origin=d.get("origin", DEFAULT_ORIGIN),
                database_url=d.get("database_url"),
                witnesses=[WitnessRef(**w) for w in d.get("witnesses", [])],
                site=SiteConfig(**d.get("site", {})),
                residency=ResidencyConfig(**d.get("residency", {})),
                keystore_url=d.get("keystore_url"),
                screening=ScreeningConfig(**d.get("screening", {})),
                oversight_vkey=d.get("oversight_vkey"),
                bus_url=d.get("bus_url"),
                state_url=d.get("state_url"),
            )
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise ConfigError(f"config.json is not valid: {exc}") from None


def resolve_data_dir(value: str | os.PathLike[str] | None = None) -> Path:
    return Path(value or os.environ.get("CLEANROOM_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


class DataDir:
    """Access to one data directory."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_data_dir(path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def keys(self) -> Path:
        return self.path / "keys"

    def exists(self) -> bool:
        return self.config_file.exists()

    def load(self) -> Config:
        if not self.exists():
            raise ConfigError(
                f"{self.path} is not a clean room data directory",
                hint="run `cleanroom init` first or pass --data-dir",
            )
        return Config.from_json(self.config_file.read_text())

    def save(self, config: Config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)  # the records, keys and configuration are nobody else's
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(config.to_json())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.config_file)

    def restrict(self) -> None:
        """Make the embedded database files readable by their owner only."""
        for name in ("cleanroom.db", "cleanroom.db-wal", "cleanroom.db-shm"):
            f = self.path / name
            if f.exists():
                os.chmod(f, 0o600)

    def database_url(self, config: Config | None = None) -> str:
        config = config or self.load()
        env = os.environ.get("CLEANROOM_DATABASE_URL")
        return env or config.database_url or sqlite_url(self.path / "cleanroom.db")

    def database(self, config: Config | None = None) -> Database:
        return Database(self.database_url(config))

    @property
    def keyring_file(self) -> Path:
        return self.keys / "keyring.json"

    def keystore_url(self, config: Config | None = None) -> str:
        config = config or self.load()
        return config.keystore_url or sqlite_url(self.keys / "subject-keys.db")

    def write_key(self, name: str, signer: Signer) -> Path:
        self.keys.mkdir(parents=True, exist_ok=True)
        os.chmod(self.keys, 0o700)
        return write_secret(self.keys / f"{name}.key", signer.skey + "\n", error=ConfigError)

    def read_key(self, name: str) -> Signer:
        text = read_secret(
            self.keys / f"{name}.key", error=ConfigError, hint="run `cleanroom init` first"
        )
        return parse_signer(text.strip())

    def has_key(self, name: str) -> bool:
        return (self.keys / f"{name}.key").exists()
