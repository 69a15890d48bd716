"""The development powers of tau shipped with the sources: used only while intact, else derived as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marketplace.zk import build
from marketplace.zk.build import DEV_POWER, RECIPE_VERSION, SHIPPED_PTAU_SHA256


def _name() -> str:
    return f"dev-bn128-{DEV_POWER}-snarkjs{build._package_version('snarkjs')}-r{RECIPE_VERSION}.ptau"


def test_shipped_ptau_is_the_pinned_file_for_the_installed_snarkjs() -> None:
    shipped = build._shipped_ptau(_name())
    assert shipped is not None, "marketplace/zk/setup/ holds no intact ptau for this snarkjs version"
    assert build._sha256_file(shipped) == SHIPPED_PTAU_SHA256


def test_altered_or_missing_shipped_ptau_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _name()
    original = build.project_root() / "marketplace" / "zk" / "setup" / name
    monkeypatch.setattr(build, "project_root", lambda: tmp_path)
    assert build._shipped_ptau(name) is None  # missing
    copy = tmp_path / "marketplace" / "zk" / "setup" / name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(original, copy)
    assert build._shipped_ptau(name) == copy
    with copy.open("r+b") as file:  # one byte changed in the middle of the accumulator
        file.seek(copy.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 1]))
    assert build._shipped_ptau(name) is None
