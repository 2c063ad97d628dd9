"""A line taught on an earlier shipped checkpoint keeps it after a newer one is installed.

Real checkpoints: the line is taught while `tiny` still means the earlier weights (as before an
upgrade), then loaded and evaluated with the current `tiny` installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import inspect_app.teach as teach
import models.backbone as backbones
from inspect_app.cli import main
from inspect_app.lines import _weights_hash, load_line_model
from tests.inspect_app.test_adapt import make_line


@pytest.mark.slow
def test_a_line_taught_on_the_earlier_checkpoint_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, data = tmp_path / "home", make_line(tmp_path / "train", {"ok": 14, "dent": 8})
    real = backbones.load_pretrained
    with monkeypatch.context() as before_upgrade:
        before_upgrade.setattr(
            backbones, "load_pretrained", lambda size="tiny": real(f"{size}-stage3")
        )
        argv = ["adapt", "--home", str(home), "--line", "old", "--data", str(data)]
        assert main([*argv, "--no-progress", "--samples", "22"]) == 0
    earlier = _weights_hash(real("tiny-stage3"))  # 96-unit experts, tiny has 48
    assert earlier != _weights_hash(real("tiny"))
    model, card, _ = load_line_model(home, "old")
    assert card.backbone["sha256"] == earlier == _weights_hash(model.backbone)
    test = make_line(tmp_path / "test", {"ok": 6, "dent": 4}, seed=1)
    argv = ["evaluate", "--home", str(home), "--line", "old", "--data", str(test)]
    assert main([*argv, "--no-progress"]) == 0


@pytest.mark.slow
def test_adapt_teaches_on_an_earlier_checkpoint_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, data = tmp_path / "home", make_line(tmp_path / "train", {"ok": 14, "dent": 8})
    argv = ["adapt", "--home", str(home), "--line", "s3", "--data", str(data), "--no-progress"]
    assert main([*argv, "--samples", "22", "--backbone", "tiny-stage3"]) == 0
    model, card, _ = load_line_model(home, "s3")
    stage3 = _weights_hash(backbones.load_pretrained("tiny-stage3"))
    assert card.backbone["sha256"] == stage3 == _weights_hash(model.backbone)
    assert model.backbone.config.moe_intermediate_size == 96

    capsys.readouterr()
    assert main([*argv, "--backbone", "tiny-stage9"]) == 2
    err = capsys.readouterr().err
    assert "'tiny-stage9'" in err and "tiny-stage3" in err
    assert card.version == load_line_model(home, "s3")[1].version  # nothing new made active


def test_get_backbone_refuses_a_name_that_is_neither_shipped_nor_a_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValueError, match=r"unknown backbone 'tiny-stage9'.*tiny-stage3.*small"):
        teach.get_backbone("tiny-stage9")
    assert "RANDOMLY INITIALISED" not in capsys.readouterr().err  # refused before any fallback


def test_get_backbone_falls_back_to_random_only_for_a_registered_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    backbone, spec = teach.get_backbone("small")  # a registered size with no checkpoint shipped
    assert spec["pretrained"] is False and backbone.config.size_name == "small"
    assert "RANDOMLY INITIALISED 'small'" in capsys.readouterr().err


def test_get_backbone_takes_the_shipped_tinym(capsys: pytest.CaptureFixture[str]) -> None:
    """`adapt --backbone tinym` teaches on its pretrained checkpoint, not a random one."""
    backbone, spec = teach.get_backbone("tinym")
    assert spec["pretrained"] is True and spec["size"] == "tinym"
    assert backbone.config.merge_after == 1 and backbone.merge is not None
    assert "RANDOMLY INITIALISED" not in capsys.readouterr().err
