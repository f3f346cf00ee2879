"""One clean room per module for the attacks that must change nothing (each
test asserts it did not); attacks that change state get a fresh one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Api, running_api, seed


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory, log_signer) -> Iterator[Api]:
    """A seeded clean room on SQLite, shared by a module's read-only attacks."""
    tmp = tmp_path_factory.mktemp("shared")
    with running_api(tmp, f"sqlite:///{tmp / 'cleanroom.db'}", log_signer) as a:
        seed(a)
        yield a
