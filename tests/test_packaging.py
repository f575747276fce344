"""The wheels as a user installs them: one namespace, no sandbox in the product, floors that work.

Builds both distributions (the product from `.`, the sandbox from `sandbox/`), installs them into
a fresh virtual environment at the *lowest* versions `pyproject.toml` allows, and runs the
command from there: `--version`, `--help` and a whole demo (every source against the sandbox).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from lxp_sync import __version__

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")


def _project(path: Path) -> dict:
    return tomllib.loads(path.read_text())["project"]


def floors(*pyprojects: Path) -> list[str]:
    """`name==floor` for every dependency with a `>=` floor (the lowest versions we claim)."""
    pins = {}
    for path in pyprojects:
        for spec in _project(path)["dependencies"]:
            match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?.*?>=\s*([0-9][^,;\s]*)", spec)
            if match:
                pins[match.group(1).lower()] = match.group(2)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), ".", "./sandbox"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return out


def test_versions_agree_and_the_sandbox_extra_pins_the_sandbox() -> None:
    product = _project(ROOT / "pyproject.toml")
    sandbox = _project(ROOT / "sandbox" / "pyproject.toml")
    assert product["version"] == sandbox["version"] == __version__
    assert product["optional-dependencies"]["sandbox"] == [
        f"lxp-sync-sandbox=={sandbox['version']}"
    ]


def test_product_wheel_holds_one_namespace_and_a_license(wheels: Path) -> None:
    (wheel,) = wheels.glob("lxp_sync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"lxp_sync", f"lxp_sync-{__version__}.dist-info"}, top
    assert any(name.endswith("licenses/LICENSE") for name in names)
    # every package of the product made it in (a new subpackage must be listed in pyproject.toml)
    sources = {p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("sources/**/*.py")}
    packaged = {name.rsplit("/", 1)[0] for name in names if name.endswith(".py")}
    assert {f"lxp_sync/{s}" for s in sources} <= packaged
    (sandbox_wheel,) = wheels.glob("lxp_sync_sandbox-*.whl")
    sandbox_top = {n.split("/", 1)[0] for n in zipfile.ZipFile(sandbox_wheel).namelist()}
    assert "lxp_sync_sandbox" in sandbox_top and "lxp_sync" not in sandbox_top


def test_installed_at_the_dependency_floors_the_command_and_the_demo_work(
    wheels: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    constraints = tmp_path / "floors.txt"
    pins = floors(ROOT / "pyproject.toml", ROOT / "sandbox" / "pyproject.toml")
    constraints.write_text("\n".join(pins) + "\n")
    install = subprocess.run(
        [
            str(UV), "pip", "install", "-q", "-p", str(venv / "bin" / "python"),
            "-c", str(constraints), "--find-links", str(wheels),
            f"lxp-sync[sandbox]=={__version__}",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    command = venv / "bin" / "lxp-sync"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"lxp-sync {__version__}"
    assert "run" in subprocess.run([str(command), "--help"], capture_output=True, text=True).stdout
    # from an empty folder: nothing of the checkout is importable from there
    demo = subprocess.run(
        [str(command), "demo", "--rows", "300", "--out", str(tmp_path / "demo")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RUNTIME__DLTHUB_TELEMETRY": "false"},
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    for table in ("assignments", "events", "users", "sales__deals"):
        assert table in demo.stdout
    assert (tmp_path / "demo" / "lxp_sync_demo.duckdb").exists()
