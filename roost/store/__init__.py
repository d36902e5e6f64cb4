"""Durable state behind the engine's ``Store`` interface (SQLite embedded; JetStream later)."""
