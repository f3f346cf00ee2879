"""``make demo``: a clean room end to end, on the embedded default.

Init a clean room (SQLite, local keys) and an independent witness; the
platform loads the bundled kuairec-small data over the API (profiles
synthesized and marked so); an engineer of the parent is denied, a support
agent sees masked fields, a user exports their data and deletes their account
(a copy of the database taken before can no longer be decrypted for them);
the For You engine trains on the vault's events through the gate, serves
explained feeds that change with a user's events and that the oversight body
replays, gives everyone in a region the same non-personalised feed, and
forgets a deleted user exactly; then the ledger: a checkpoint the witness
cosigns, an outside monitor verifying over HTTP, an inclusion proof checked
offline, a forked checkpoint refused, and an insider's edit of two decisions
caught.
"""
