"""`evaluate --backend` and `calibrate --backend`: the parts scored by what the line runs (the
version's exported graph in onnxruntime), and a clear error where that is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspect_app.cli import main
from inspect_app.lines import read_card
from inspect_app.teach import EvaluateOptions, evaluate_line
from tests.inspect_app.small_lines import image_line, taught_image_line

pytestmark = pytest.mark.usefixtures("small_teach_backbone")
LINE = "cover-2"


def _taught(tmp_path: Path) -> Path:
    return taught_image_line(tmp_path, LINE)


def test_onnxruntime_scores_the_parts_as_torch_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _taught(tmp_path)
    checks = image_line(tmp_path / "checks", 24, 1000)
    torch_report = evaluate_line(home, LINE, checks, EvaluateOptions(show_progress=False))
    argv = ["evaluate", "--home", str(home), "--line", LINE, "--data", str(checks)]
    out_json = tmp_path / "ort.json"
    capsys.readouterr()
    assert main([*argv, "--backend", "onnxruntime", "--threads", "1", "--batch-size", "4",
                 "--no-progress", "--json", str(out_json)]) == 0  # fmt: skip
    assert "note: scored by onnxruntime (" in capsys.readouterr().out
    ort_report = json.loads(out_json.read_text())
    assert ort_report["auroc"] == pytest.approx(torch_report.auroc, abs=1e-6)
    assert ort_report["miss_rate"] == torch_report.miss_rate
    assert ort_report["false_reject_rate"] == torch_report.false_reject_rate
    ort_scores = evaluate_line(
        home, LINE, checks, EvaluateOptions(show_progress=False, backend="onnxruntime")
    )
    np.testing.assert_allclose(
        [p.defect_score for p in ort_scores.parts],
        [p.defect_score for p in torch_report.parts],
        atol=1e-4,
    )
    # the threshold set on the exported graph's scores, and the card says so
    assert main(["calibrate", "--home", str(home), "--line", LINE, "--data", str(checks),
                 "--backend", "onnxruntime", "--no-progress"]) == 0  # fmt: skip
    assert read_card(home / "lines" / LINE / "v2").calibration["backend"] == "onnxruntime"


def test_a_missing_engine_or_bad_thread_count_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _taught(tmp_path)
    checks = image_line(tmp_path / "checks", 12, 1000)
    argv = ["evaluate", "--home", str(home), "--line", LINE, "--data", str(checks), "--no-progress"]
    assert main([*argv, "--backend", "tensorrt"]) == 1
    err = capsys.readouterr().err
    assert f"line '{LINE}' v1: " in err and "model.engine" in err
    assert main([*argv, "--threads", "0"]) == 2
    assert "--threads must be positive, got 0" in capsys.readouterr().err


def test_a_damaged_version_is_a_clear_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _taught(tmp_path)
    checks = image_line(tmp_path / "checks", 12, 1000)
    weights = home / "lines" / LINE / "v1" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy cut short
    for command in ("evaluate", "calibrate"):
        argv = [command, "--home", str(home), "--line", LINE, "--data", str(checks)]
        assert main([*argv, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert f"line '{LINE}' v1: its model in " in err and "cannot be loaded" in err
        assert "--activate vN" in err
    weights.unlink()
    assert main(["export", "--home", str(home), "--line", LINE]) == 2
    assert "FileNotFoundError" in capsys.readouterr().err


def test_the_int8_graph_export_wrote_is_what_evaluate_and_serve_run_with_precision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`export --int8` writes model.int8.onnx beside model.onnx; `--precision int8` scores the
    parts with that graph (not the fp32 one), and is refused where it cannot apply."""
    from inspect_app.service import ServeOptions, load_line, serve
    from inspect_app.store import DefectStore

    home = _taught(tmp_path)
    folder = home / "lines" / LINE / "v1"
    checks = image_line(tmp_path / "checks", 16, 1000)
    argv = ["evaluate", "--home", str(home), "--line", LINE, "--data", str(checks), "--no-progress"]
    assert main([*argv, "--backend", "onnxruntime", "--precision", "int8"]) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'model.int8.onnx'} does not exist" in err
    assert f"inspect-app export --line {LINE} --version v1 --int8" in err
    assert main([*argv, "--precision", "int8"]) == 2  # torch runs the line's own weights
    assert "--precision int8 picks an exported graph for --backend onnxruntime" in (
        capsys.readouterr().err
    )

    assert main(["export", "--home", str(home), "--line", LINE, "--int8"]) == 0
    assert not (folder / "model.onnx").exists()  # only the int8 graph was asked for
    capsys.readouterr()
    out_json = tmp_path / "int8.json"
    assert main([*argv, "--backend", "onnxruntime", "--precision", "int8",
                 "--json", str(out_json)]) == 0  # fmt: skip
    assert f"note: scored by onnxruntime ({folder / 'model.int8.onnx'})" in (
        capsys.readouterr().out
    )
    assert json.loads(out_json.read_text())["n"] == 16
    runner = load_line(home, LINE, "onnxruntime", precision="int8").backend
    assert getattr(runner, "path", None) == folder / "model.int8.onnx"
    with pytest.raises(ValueError, match="tensorrt runs its engine"):
        load_line(home, LINE, "tensorrt", precision="fp16")

    db = f"sqlite:///{tmp_path / 'serve.db'}"
    options = ServeOptions(home=home, line=LINE, source=str(checks), db_url=db,
                           backend="onnxruntime", precision="int8", http=None)  # fmt: skip
    assert serve(options) == 0
    assert f"line {LINE} v1 on onnxruntime ({folder / 'model.int8.onnx'})" in (
        capsys.readouterr().err
    )
    with DefectStore.open(db) as store:
        assert store.count() == 16
