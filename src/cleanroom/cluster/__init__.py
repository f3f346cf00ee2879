"""What the nodes of one clean room share beyond the database's records: the
users' feed settings, their online states (in the process, or in Redis for
every node), and — as the cluster grows — the event bus, feed records, model
artifacts and leases. Each role has an embedded implementation (nothing to
install) and one on a shared engine; both pass the same tests."""
