"""digitflow.cli.models: `serve` says so when the model would answer other machines without a login."""

from __future__ import annotations

import pytest

from digitflow.cli.models import exposure_warning


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "localhost"])
def test_serving_on_this_machine_says_nothing(host: str) -> None:
    assert exposure_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "mlflow.example.org"])
def test_serving_beyond_this_machine_warns(host: str) -> None:
    warning = exposure_warning(host)
    assert warning is not None
    assert warning.startswith(f"warning: --host {host} serves the model to anyone who can reach this machine's port")
    assert "no authentication" in warning
