"""The cluster backplane on NATS JetStream (shared/cluster.md, docs/cluster.md)."""
