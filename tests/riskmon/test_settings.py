"""Settings that other modules turn into client options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from riskmon.settings import Settings


def test_compression_is_off_by_default_and_has_an_environment_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKMON_COMPRESSION", raising=False)
    assert Settings().producer_compression() is None
    assert Settings(compression="lz4").producer_compression() == "lz4"
    monkeypatch.setenv("RISKMON_COMPRESSION", "zstd")
    assert Settings().producer_compression() == "zstd"


def test_unknown_compression_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKMON_COMPRESSION", "brotli")
    with pytest.raises(ValidationError, match="lz4"):
        Settings()
