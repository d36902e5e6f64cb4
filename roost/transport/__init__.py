"""The asyncio edge: listeners that feed bytes to channels and write their output."""
