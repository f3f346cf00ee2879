"""Signed notes, checkpoints and cosignatures follow the C2SP texts to the byte."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest

from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.errors import CheckpointError, KeyFormatError, NoteError, SignatureError
from cleanroom.ledger.hashing import EMPTY_ROOT
from cleanroom.ledger.note import (
    ALG_COSIGNATURE_V1,
    cosignature_message,
    generate_signer,
    open_note,
    parse_note,
    parse_signer,
    parse_verifier,
    sign_note,
)

# golang.org/x/mod/sumdb/note's documented example (the reference implementation).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
    "vqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# The example in C2SP signed-note "Verifier keys".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ON"
    "ncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_signing_reproduces_the_go_reference_note_byte_for_byte() -> None:
    signer = parse_signer(GO_SKEY)
    assert signer.verifier.vkey == GO_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    assert signer.skey == GO_SKEY


def test_spec_example_verifies_and_key_id_follows_the_spec() -> None:
    v = parse_verifier(SPEC_VKEY)
    note = open_note(SPEC_NOTE, [v])
    assert note.text == "This is an example message.\n"
    want = hashlib.sha256(b"example.com/foo\n\x01" + v.public).digest()[:4]
    assert struct.pack(">I", v.key_id) == want


def test_unknown_signatures_are_ignored_and_bad_known_ones_reject() -> None:
    other = generate_signer("other.example/key")
    note = sign_note(GO_TEXT, [parse_signer(GO_SKEY), other])
    assert len(open_note(note, [parse_verifier(GO_VKEY)]).verified) == 1
    with pytest.raises(SignatureError):
        open_note(GO_NOTE, [other.verifier])  # no trusted signature
    tampered = GO_NOTE.replace("problem,", "problem;")
    with pytest.raises(SignatureError):
        open_note(tampered, [parse_verifier(GO_VKEY)])


@pytest.mark.parametrize(
    "msg",
    [
        "no signatures\n",
        "text\n\n",
        "text\n\n— PeterNeumann x08go\n",  # signature too short / bad base64
        "text\n\nPeterNeumann AAAAAAAA\n",  # no em dash
        "text\n\n— Peter Neumann AAAAAAAA\n",  # space in name
        "text\n\n— a+b AAAAAAAA\n",  # plus in name
        "text\x01\n\n— PeterNeumann AAAAAAAA\n",  # control char
        "text\n\n— PeterNeumann AAAAAAAA",  # no final newline
        b"\xff\xfe\n\n\xe2\x80\x94 a AAAAAAAA\n",  # not UTF-8
        "text\n\n" + "— PeterNeumann AAAAAAAA\n" * 101,  # too many
    ],
)
def test_malformed_notes_are_rejected(msg: str | bytes) -> None:
    with pytest.raises((NoteError, SignatureError)):
        open_note(msg, [parse_verifier(GO_VKEY)])


@pytest.mark.parametrize(
    "key",
    [
        "",
        "name+deadbeef",
        "name+DEADBEEF+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong id
        "example.com/foo+530d903a+Aeky",
        "example.com/foo+530d903a+B2kyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # bad type
    ],
)
def test_malformed_verifier_keys_are_rejected(key: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_verifier(key)


def test_cosignature_format_follows_tlog_cosignature(witness_signer) -> None:
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, EMPTY_ROOT)
    note = sign_note(cp.text(), [generate_signer(cp.origin)])
    line = sign_note(cp.text(), [witness_signer], timestamp=1679315147).split("\n\n")[1]
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    assert (
        raw[:4]
        == hashlib.sha256(b"witness.example/w1\n\x04" + witness_signer.verifier.public).digest()[:4]
    )
    assert struct.unpack(">Q", raw[4:12])[0] == 1679315147
    assert cosignature_message(cp.text().encode(), 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + cp.text().encode()
    )
    witness_signer.verifier.public  # noqa: B018
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(witness_signer.verifier.public).verify(
        raw[12:], cosignature_message(cp.text().encode(), 1679315147)
    )
    both = note + line
    opened = open_note(both, [witness_signer.verifier])
    assert opened.verified[0].timestamp == 1679315147
    assert witness_signer.verifier.vkey.split("+")[2].startswith(
        base64.b64encode(bytes([ALG_COSIGNATURE_V1]))[:1].decode()
    )


def test_checkpoint_roundtrip_and_errors() -> None:
    cp = Checkpoint("example.com/log", 5, EMPTY_ROOT, ("ext one",))
    assert parse_checkpoint(cp.text()) == cp
    assert cp.text() == f"example.com/log\n5\n{base64.b64encode(EMPTY_ROOT).decode()}\next one\n"
    root = base64.b64encode(EMPTY_ROOT).decode()
    for bad in [
        "example.com/log\n5\n",
        f"example.com/log\n05\n{root}\n",
        f"example.com/log\n-1\n{root}\n",
        f"example.com/log\n5\n{root[:-4]}\n",
        f"\n5\n{root}\n",
        f"example.com/log\n5\n{root}\n\n",
        f"example.com/log\n5\n{root}",
    ]:
        with pytest.raises(CheckpointError):
            parse_checkpoint(bad)


def test_parse_note_splits_at_the_last_blank_line() -> None:
    text = "line one\n\nline three\n"
    note = sign_note(text, [parse_signer(GO_SKEY)])
    assert parse_note(note).text == text
