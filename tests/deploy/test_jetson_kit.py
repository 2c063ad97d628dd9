"""deploy/jetson: the unit verifies, scripts compile, README shell blocks parse, and
build_engine.py takes the TensorRT 8.5 and 10 branches against a fake `tensorrt` module."""

from __future__ import annotations

import importlib.util
import json
import py_compile
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.export import ExportMetadata, TensorSpec, metadata_path

KIT = Path(__file__).resolve().parents[2] / "deploy" / "jetson"


def _load_build_engine() -> Any:
    spec = importlib.util.spec_from_file_location("build_engine", KIT / "build_engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_engine_compiles() -> None:
    py_compile.compile(str(KIT / "build_engine.py"), doraise=True)


UNITS = {  # unit file -> (the name it is verified under, its settings file as shipped)
    "inspect-app.service": ("inspect-app.service", "/etc/inspect-app/inspect-app.env"),
    "inspect-app@.service": ("inspect-app@line-1.service", "/etc/inspect-app/%i.env"),
}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
@pytest.mark.parametrize("name", sorted(UNITS))
def test_systemd_unit_verifies(tmp_path: Path, name: str) -> None:
    unit = (KIT / name).read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "Restart=on-failure" in unit
    assert "User=inspect-app" in unit and "StateDirectory=inspect-app" in unit
    # point the binary and settings at files that exist here; everything else as shipped
    verified_as, env = UNITS[name]
    unit = unit.replace("/opt/inspect-app/venv/bin/inspect-app", sys.executable)
    settings = "inspect-app.env" if name == "inspect-app.service" else "line.env"
    unit = unit.replace(env, str(KIT / settings))
    path = tmp_path / verified_as
    path.write_text(unit)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in done.stderr.splitlines() if verified_as in line]
    assert done.returncode == 0 and not problems, done.stderr


def test_template_unit_is_the_single_unit_per_line() -> None:
    """inspect-app@.service differs from inspect-app.service only where a line is named: the
    instance is the line, its settings file and journal name follow it."""
    single = (KIT / "inspect-app.service").read_text().splitlines()
    template = (KIT / "inspect-app@.service").read_text().splitlines()

    def settings(lines: list[str]) -> list[str]:  # the unit's directives, comments left out
        return [line for line in lines if line and not line.startswith("#")]

    expected = [
        line.replace("inspect-app/inspect-app.env", "inspect-app/%i.env")
        .replace("--line ${INSPECT_APP_LINE}", "--line %i")
        .replace("(headless service)", "of line %i (headless service)")
        for line in settings(single)
    ]
    got = [line for line in settings(template) if not line.startswith("SyslogIdentifier=")]
    assert got == expected
    assert "SyslogIdentifier=inspect-app-%i" in template
    single_env = (KIT / "inspect-app.env").read_text()
    line_env = (KIT / "line.env").read_text()
    assert "INSPECT_APP_LINE" in single_env and "INSPECT_APP_LINE" not in line_env
    for name in ("INSPECT_APP_SOURCE=", "INSPECT_APP_HTTP=", "INSPECT_APP_SERVE_ARGS="):
        assert name in single_env and name in line_env


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed")
def test_dockerfile_lints_clean() -> None:
    done = subprocess.run(["hadolint", str(KIT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_readme_shell_blocks_parse(tmp_path: Path) -> None:
    text = (KIT / "README.md").read_text()
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`((?:sudo|python3|docker|curl|systemctl) [^`]+)`", text)
    script = "\n".join(blocks + inline).replace("<this repository>", "REPO")
    path = tmp_path / "readme.sh"
    path.write_text(script)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- build_engine against a fake TensorRT ------------------------------------------------------


class _Recorder:
    def __init__(self, log: list[Any], name: str) -> None:
        self._log, self._name = log, name

    def __getattr__(self, attr: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._log.append((self._name, attr, args))
            return True

        return call


def fake_tensorrt(version: str, log: list[Any]) -> types.ModuleType:
    """FakeTensorRT for the builder side: records the configuration calls."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]

    class Logger:
        WARNING, VERBOSE = 2, 4

        def __init__(self, severity: int) -> None:
            pass

    class Config:
        def __init__(self) -> None:
            self.flags: list[str] = []
            self.int8_calibrator: Any = None

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            log.append(("workspace", pool, size))

        def set_flag(self, flag: str) -> None:
            self.flags.append(flag)

        def add_optimization_profile(self, profile: Any) -> None:
            log.append(("profile", profile.shapes))

        def set_calibration_profile(self, profile: Any) -> None:
            log.append(("calibration_profile",))

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[Any, ...]] = {}

        def set_shape(self, name: str, low: Any, opt: Any, high: Any) -> None:
            self.shapes[name] = (low, opt, high)

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger: Any) -> None:
            self.config = Config()

        def create_network(self, flags: int) -> str:
            log.append(("network_flags", flags))
            return "network"

        def create_builder_config(self) -> Config:
            return self.config

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: str, config: Config) -> bytes:
            log.append(("flags", list(config.flags)))
            calibrator = config.int8_calibrator
            if calibrator is not None:  # drive it as TensorRT does
                names = ["image", "prompt_tokens"]
                while calibrator.get_batch(names) is not None:
                    log.append(("calibration_batch",))
                calibrator.write_calibration_cache(b"cache")
            return b"plan"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: Any, logger: Any) -> None:
            pass

        def parse(self, blob: bytes) -> bool:
            return True

    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.Builder = Builder  # type: ignore[attr-defined]
    trt.OnnxParser = OnnxParser  # type: ignore[attr-defined]
    trt.IInt8EntropyCalibrator2 = object  # type: ignore[attr-defined]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")  # type: ignore[attr-defined]
    trt.BuilderFlag = types.SimpleNamespace(  # type: ignore[attr-defined]
        FP16="FP16", INT8="INT8", GPU_FALLBACK="GPU_FALLBACK"
    )
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)  # type: ignore[attr-defined]
    trt.DeviceType = types.SimpleNamespace(DLA="DLA")  # type: ignore[attr-defined]
    return trt


class _HostMemory:
    def __init__(self) -> None:
        self.n = 0

    def alloc(self, nbytes: int) -> int:
        self.n += 1
        return self.n

    def address(self, buffer: int) -> int:
        return buffer

    def new_stream(self) -> None:
        return None

    def to_device(self, buffer: int, host: np.ndarray, stream: None) -> None:
        pass

    def synchronize(self, stream: None) -> None:
        pass


def _graph(tmp_path: Path) -> Path:
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"graph")
    np.savez(tmp_path / "model.line.npz", prompt_tokens=np.zeros((2, 4), np.float32))
    ExportMetadata(
        line="l",
        version="v1",
        inputs=[
            TensorSpec("image", (-1, 3, 8, 8), "float32"),
            TensorSpec("prompt_tokens", (2, 4), "float32"),
        ],
        outputs=[TensorSpec("defect_score", (-1,), "float32")],
        line_inputs=["prompt_tokens"],
        line_tensors="model.line.npz",
        normalization={},
        spectrum={},
        threshold=0.5,
        classes=[],
        model_sha256="0" * 64,
    ).write(metadata_path(onnx_path))
    return onnx_path


@pytest.mark.parametrize(("version", "flags"), [("8.5.2", 1), ("10.3.0", 0)])
def test_build_engine_fp16_on_tensorrt_85_and_10(tmp_path: Path, version: str, flags: int) -> None:
    build_engine = _load_build_engine()
    log: list[Any] = []
    onnx_path = _graph(tmp_path)
    out = tmp_path / "out" / "model.engine"
    out.parent.mkdir()
    args = build_engine.parse_args(["--onnx", str(onnx_path), "--out", str(out), "--batch", "4"])
    build_engine.build(args, trt=fake_tensorrt(version, log))
    assert ("network_flags", flags) in log
    assert ("workspace", "WORKSPACE", 1024 << 20) in log
    assert ("flags", ["FP16"]) in log
    profile = next(entry[1] for entry in log if entry[0] == "profile")
    assert profile == {"image": ((1, 3, 8, 8), (4, 3, 8, 8), (4, 3, 8, 8))}
    assert out.read_bytes() == b"plan"
    meta = json.loads(metadata_path(out).read_text())
    assert meta["runtime"]["tensorrt"] == version and meta["precision"] == "fp16"
    assert (out.parent / "model.line.npz").is_file()  # line tensors travel with the engine


def test_build_engine_int8_calibrates_and_caches_on_dla(tmp_path: Path) -> None:
    build_engine = _load_build_engine()
    log: list[Any] = []
    onnx_path = _graph(tmp_path)
    calib = tmp_path / "model.calib.npz"
    np.savez(calib, image=np.zeros((10, 3, 8, 8), np.float32))
    args = build_engine.parse_args(
        [
            "--onnx",
            str(onnx_path),
            "--precision",
            "int8",
            "--calib",
            str(calib),
            "--batch",
            "4",
            "--dla-core",
            "0",
        ]
    )
    build_engine.build(args, trt=fake_tensorrt("8.5.2", log), memory=_HostMemory())
    assert log.count(("calibration_batch",)) == 2  # 10 parts, batch 4: two full batches
    assert calib.with_suffix(".cache").read_bytes() == b"cache"
    assert ("flags", ["FP16", "INT8", "GPU_FALLBACK"]) in log
    profile = next(entry[1] for entry in log if entry[0] == "profile")
    assert profile["image"][0][0] == 4  # DLA: fixed batch
