"""Where a result came from: git commit, package versions, hardware, command line."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "highway-env", "gymnasium", "numpy", "opencv-python-headless",
            "albumentations", "onnx", "onnxruntime", "pandas")
ROOT = Path(__file__).resolve().parents[1]


_PINNED: str | None = None


@contextmanager
def pinned_git_sha() -> Iterator[str]:
    """Within the block, git_sha() is the tree as it was on entry: a run that writes tracked files
    itself (`make baselines` writes models/zoo) stays the provenance of the commit it started from."""
    global _PINNED
    outer, _PINNED = _PINNED, git_sha()
    try:
        yield _PINNED
    finally:
        _PINNED = outer


def git_sha() -> str:
    """The repository's HEAD commit, with '-dirty' when tracked files have uncommitted changes."""
    if _PINNED is not None:
        return _PINNED
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def hardware() -> dict[str, object]:
    import os

    info: dict[str, object] = {"machine": platform.machine(), "cpus": os.cpu_count(), "system": platform.system()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def command_line() -> str:
    """The command that started this process as one would type it: `python -m benchmark train ...`,
    not the absolute path of a `__main__.py` (which names the machine it ran on)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        head = ["python", "-m", spec.name.removesuffix(".__main__")]
    else:
        head = ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])
