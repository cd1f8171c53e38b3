"""The wheel: built from the tree, installed into a fresh virtual environment, and run there.

The fresh environment gets the wheel's dependencies from the same index the project uses; the
point is that the wheel alone (schemas and templates inside it) is a working Talon.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_validates(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("talon_scheduler-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for schema in ("talon", "schedule", "resources", "run"):
        assert f"talon/schemas/{schema}.schema.json" in names
    assert "talon/templates/init/talon.yaml" in names
    assert "talon/templates/init/.gitignore" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", str(wheel)], check=True)
    talon = venv / "bin" / "talon"
    repo = tmp_path / "ops"
    subprocess.run([str(talon), "init", str(repo)], check=True, capture_output=True)
    result = subprocess.run(
        [str(talon), "-C", str(repo), "validate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    example = subprocess.run(
        [str(talon), "-C", str(ROOT / "example-repo"), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert example.returncode == 0, example.stdout
