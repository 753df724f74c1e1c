"""digitflow.core.progress: one redrawn bar in a terminal, a few plain lines elsewhere."""

from __future__ import annotations

import logging

import pytest
from tqdm import tqdm

from digitflow.core.progress import EpochProgress, download_bars_only_in_a_terminal


def train(progress: EpochProgress, epochs: int) -> None:
    for epoch in range(1, epochs + 1):
        progress.update(epoch, train_loss=1 / epoch, val_acc=0.9)
    progress.close()


def test_without_a_terminal_a_few_plain_lines(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digitflow.core.progress")
    train(EpochProgress(50, terminal=False), 50)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[0] for line in lines] == [f"epoch {e}/50" for e in (10, 20, 30, 40, 50)]
    assert lines[-1] == "epoch 50/50: train_loss 0.0200, val_acc 0.9000"
    assert capsys.readouterr().err == ""  # no bar at all


def test_the_last_epoch_is_always_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digitflow.core.progress")
    train(EpochProgress(7, terminal=False), 7)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "epoch 2/7",
        "epoch 4/7",
        "epoch 6/7",
        "epoch 7/7",
    ]


def test_in_a_terminal_one_bar_for_the_whole_training(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="digitflow.core.progress")
    train(EpochProgress(50, terminal=True), 50)
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one bar, redrawn in place, left on screen once
    final = err.split("\r")[-1]
    assert "50/50" in final
    assert "train_loss=0.0200" in final
    assert "val_acc=0.9000" in final
    assert caplog.records == []


def test_disabled_shows_nothing(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digitflow.core.progress")
    train(EpochProgress(5, enabled=False, terminal=True), 5)
    assert capsys.readouterr().err == ""
    assert caplog.records == []


def test_download_bars_are_dropped_without_a_terminal(capsys: pytest.CaptureFixture) -> None:
    with download_bars_only_in_a_terminal():
        for _ in tqdm(range(3), desc="train-images-idx3-ubyte.gz"):
            pass
    assert capsys.readouterr().err == ""
    for _ in tqdm(range(3), desc="outside"):  # outside the block, stderr is untouched
        pass
    assert "outside" in capsys.readouterr().err
