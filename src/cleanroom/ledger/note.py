"""C2SP signed-note: Ed25519 note signatures, timestamped cosignatures, key strings.

Keys are strings, as in Go's ``golang.org/x/mod/sumdb/note``:

* verifier key (vkey): ``<name>+<hex key ID>+<base64(type || public key)>``
* signer key: ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>``

Two signature types are supported: ``0x01`` (Ed25519 over the note text) for
logs, and ``0x04`` (timestamped Ed25519 cosignatures, C2SP tlog-cosignature)
for witnesses.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cleanroom.ledger.errors import KeyFormatError, LedgerError, NoteError, SignatureError
from cleanroom.ledger.hashing import b64, unb64

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20
_NAME_BAD = re.compile(r"[\s+]")
_DASH = "\u2014"


def check_key_name(name: str) -> None:
    """Key names are non-empty, with no Unicode spaces and no plus signs."""
    if not name or _NAME_BAD.search(name) or not name.isprintable():
        raise KeyFormatError(f"key name {name!r} is empty or contains spaces or '+'")


def key_id(name: str, alg: int, public: bytes) -> int:
    """SHA-256(name || 0x0A || alg || public key)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()
    return struct.unpack(">I", digest[:4])[0]


@dataclass(frozen=True)
class Verifier:
    """A public key that can check one kind of note signature."""

    name: str
    key_id: int
    alg: int
    public: bytes

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64(bytes([self.alg]) + self.public)}"

    def verify(self, text: bytes, sig: bytes) -> bool:
        """Whether ``sig`` (the bytes after the key ID) signs the note ``text``."""
        key = Ed25519PublicKey.from_public_bytes(self.public)
        if self.alg == ALG_ED25519:
            message = text
            raw = sig
        elif self.alg == ALG_COSIGNATURE_V1:
            if len(sig) != 8 + 64:
                return False
            (timestamp,) = struct.unpack(">Q", sig[:8])
            if timestamp >= 2**63:
                return False
            message = cosignature_message(text, timestamp)
            raw = sig[8:]
        else:  # pragma: no cover - guarded at construction
            return False
        try:
            key.verify(raw, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private key that signs notes (alg 0x01) or cosigns checkpoints (alg 0x04)."""

    name: str
    key_id: int
    alg: int
    seed: bytes = field(repr=False)

    @property
    def skey(self) -> str:
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64(bytes([self.alg]) + self.seed)}"

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.alg, _public(self.seed))

    def sign(self, text: bytes, timestamp: int | None = None) -> bytes:
        """Signature bytes (without the key ID) over note ``text``."""
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        if self.alg == ALG_ED25519:
            return key.sign(text)
        ts = int(time.time()) if timestamp is None else timestamp
        if not 0 < ts < 2**63:
            raise LedgerError("cosignature timestamp must be positive and below 2^63")
        return struct.pack(">Q", ts) + key.sign(cosignature_message(text, ts))


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """The message a tlog-cosignature/v1 Ed25519 cosigner signs."""
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text


def _public(seed: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def generate_signer(name: str, alg: int = ALG_ED25519) -> Signer:
    """A fresh Ed25519 key for a log (alg 0x01) or a witness (alg 0x04)."""
    check_key_name(name)
    if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
        raise KeyFormatError(f"unsupported signature type 0x{alg:02x}")
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    seed = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return Signer(name, key_id(name, alg, _public(seed)), alg, seed)


def _split_key(text: str, parts: int, what: str) -> list[str]:
    fields = text.strip().split("+", parts - 1)
    if len(fields) != parts:
        raise KeyFormatError(f"{what} must have {parts} '+'-separated fields")
    return fields


def _decode_key_material(
    name: str, id_hex: str, material: str, what: str
) -> tuple[int, int, bytes]:
    check_key_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", id_hex):
        raise KeyFormatError(f"{what} key ID must be 8 lowercase hex digits")
    try:
        raw = unb64(material, f"{what} key material")
    except LedgerError as exc:
        raise KeyFormatError(exc.message) from exc
    if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
        raise KeyFormatError(f"{what} must hold a 1-byte type (0x01 or 0x04) and a 32-byte key")
    return int(id_hex, 16), raw[0], raw[1:]


def parse_verifier(vkey: str) -> Verifier:
    """Parse a vkey string; the key ID must match the name and key."""
    name, id_hex, material = _split_key(vkey, 3, "verifier key")
    kid, alg, public = _decode_key_material(name, id_hex, material, "verifier key")
    try:
        Ed25519PublicKey.from_public_bytes(public)
    except ValueError as exc:
        raise KeyFormatError("verifier key is not a valid Ed25519 public key") from exc
    if kid != key_id(name, alg, public):
        raise KeyFormatError("verifier key ID does not match its name and public key")
    return Verifier(name, kid, alg, public)


def parse_signer(skey: str) -> Signer:
    """Parse a ``PRIVATE+KEY+...`` signer key string."""
    fields = _split_key(skey, 5, "signer key")
    if fields[:2] != ["PRIVATE", "KEY"]:
        raise KeyFormatError("signer key must start with PRIVATE+KEY+")
    kid, alg, seed = _decode_key_material(fields[2], fields[3], fields[4], "signer key")
    signer = Signer(fields[2], kid, alg, seed)
    if kid != key_id(signer.name, alg, signer.verifier.public):
        raise KeyFormatError("signer key ID does not match its name and key")
    return signer


# --------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_id: int
    sig: bytes  # the bytes after the 4-byte key ID

    def line(self) -> str:
        return f"{_DASH} {self.name} {b64(struct.pack('>I', self.key_id) + self.sig)}\n"

    @property
    def timestamp(self) -> int | None:
        """The cosignature timestamp, for 0x04 cosignatures (None when not 72 bytes)."""
        return struct.unpack(">Q", self.sig[:8])[0] if len(self.sig) == 72 else None


@dataclass(frozen=True)
class Note:
    """A parsed signed note: its text, all signatures, and those that verified."""

    text: str
    signatures: tuple[Signature, ...]
    verified: tuple[Signature, ...] = ()

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def sign_note(text: str, signers: list[Signer], timestamp: int | None = None) -> str:
    """Sign ``text`` (which must end in a newline) with every signer; returns the note."""
    _check_text(text)
    data = text.encode()
    sigs = [Signature(s.name, s.key_id, s.sign(data, timestamp)) for s in signers]
    return text + "\n" + "".join(s.line() for s in sigs)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(c < " " and c != "\n" for c in text):
        raise NoteError("note text contains control characters")


def parse_note(msg: str | bytes) -> Note:
    """Split a signed note into text and signature lines, checking the format only."""
    if isinstance(msg, bytes):
        if len(msg) > MAX_NOTE_BYTES:
            raise NoteError(f"note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            msg = msg.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    if len(msg) > MAX_NOTE_BYTES:
        raise NoteError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    if any(c < " " and c != "\n" for c in msg):
        raise NoteError("note contains control characters other than newline")
    if not msg.endswith("\n"):
        raise NoteError("note must end with a newline")
    split = msg.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line between text and signatures")
    text, sig_block = msg[: split + 1], msg[split + 2 :]
    lines = sig_block[:-1].split("\n") if sig_block else []
    if not lines:
        raise NoteError("note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    sigs = [_parse_sig_line(line) for line in lines]
    return Note(text, tuple(sigs))


def _parse_sig_line(line: str) -> Signature:
    if not line.startswith(_DASH + " "):
        raise NoteError("signature line must start with an em dash and a space")
    rest = line[2:]
    name, sep, b64sig = rest.partition(" ")
    if not sep or " " in b64sig:
        raise NoteError("signature line must be '— <name> <base64 signature>'")
    try:
        check_key_name(name)
        raw = unb64(b64sig, "signature")
    except LedgerError as exc:
        raise NoteError(exc.message) from exc
    if len(raw) < 5:
        raise NoteError("signature is shorter than a key ID and one byte")
    return Signature(name, struct.unpack(">I", raw[:4])[0], raw[4:])


def open_note(msg: str | bytes, verifiers: list[Verifier]) -> Note:
    """Parse and verify a note against known keys (C2SP signed-note rules).

    Unknown signatures are ignored; a known key whose signature fails makes the
    whole note invalid; at least one known key must verify.
    """
    note = parse_note(msg)
    known = {(v.name, v.key_id): v for v in verifiers}
    data = note.text.encode()
    ok: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        if (sig.name, sig.key_id) in seen:
            raise NoteError(f"note carries two signatures from {sig.name}")
        seen.add((sig.name, sig.key_id))
        if not v.verify(data, sig.sig):
            raise SignatureError(f"signature from known key {sig.name} does not verify")
        ok.append(sig)
    if not ok:
        raise SignatureError("note has no signature from a trusted key")
    return Note(note.text, note.signatures, tuple(ok))
