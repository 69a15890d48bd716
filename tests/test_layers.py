"""The import-linter layer contracts in pyproject.toml: they hold today, and each one fails on an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agents", "protocols", "marketplace")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {
    contract["id"]: contract
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
}


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the packages and pyproject.toml in `project`, as `make lint` does."""
    # PYTHONPATH puts the copy ahead of the editable install, which would otherwise resolve to ROOT;
    # a wide COLUMNS keeps rich from wrapping a contract name across lines.
    env = {**os.environ, "PYTHONPATH": str(project), "COLUMNS": "300"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache", "--no-logo"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def broken(result: subprocess.CompletedProcess[str]) -> set[str]:
    """Ids of the contracts that lint-imports reported broken."""
    return {cid for cid, contract in CONTRACTS.items() if f"{contract['name']} BROKEN" in result.stdout}


def _sources_only(folder: str, names: list[str]) -> list[str]:
    """copytree ignore: keep Python sources only (no caches, data or assets)."""
    data = [name for name in names if Path(folder, name).is_file() and not name.endswith(".py")]
    return [*data, "__pycache__"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the three root packages' sources and pyproject.toml, to plant imports in."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=_sources_only)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def plant(project: Path, edges: list[tuple[str, str]]) -> None:
    """Append each `import` statement to its file in the copy."""
    for path, statement in edges:
        target = project / path
        assert target.is_file(), f"{path} is gone: pick another file for this edge"
        target.write_text(target.read_text() + f"\n{statement}\n")


def test_contracts_holdOnTheRepository() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_contracts_holdOnAnUnmodifiedCopy(project: Path) -> None:
    result = lint_imports(project)
    assert result.returncode == 0, result.stdout + result.stderr


# One upward edge per rule of the layering; each must break (at least) the contract named.
UPWARD = [
    pytest.param("protocols/errors.py", "import agents.roles", "protocols", id="protocols->agents"),
    pytest.param("protocols/model.py", "import marketplace.chain", "protocols", id="protocols->services"),
    pytest.param("protocols/errors.py", "import torch", "protocols", id="protocols->torch"),
    pytest.param("marketplace/ml/__init__.py", "import agents.base", "stack", id="ml->agents"),
    pytest.param("marketplace/chain/__init__.py", "import marketplace.sim", "stack", id="chain->sim"),
    pytest.param("marketplace/registry/storage.py", "import marketplace.cli", "stack", id="registry->cli"),
    pytest.param("marketplace/blobstore.py", "import marketplace.registry.cli", "stack", id="blobstore->registry.cli"),
    pytest.param("agents/clock.py", "import agents.capabilities", "sdk", id="core->capabilities"),
    pytest.param("agents/base.py", "import agents.roles", "sdk", id="core->roles"),
    pytest.param("agents/wallet.py", "import agents.markets", "sdk", id="core->markets"),
    pytest.param("agents/crypto.py", "import agents.testing", "sdk", id="core->testing"),
    pytest.param("agents/store.py", "import marketplace.sim", "stack", id="core->sim"),
    pytest.param("agents/capabilities/__init__.py", "import agents.roles", "sdk", id="capabilities->roles"),
    pytest.param("agents/capabilities/__init__.py", "import marketplace.cli", "stack", id="capabilities->cli"),
    pytest.param("agents/roles/__init__.py", "import agents.markets", "sdk", id="roles->markets"),
    pytest.param("agents/markets/__init__.py", "import marketplace.sim", "stack", id="markets->sim"),
]


@pytest.mark.parametrize(("path", "statement", "contract"), UPWARD)
def test_contracts_failOnAnUpwardImport(project: Path, path: str, statement: str, contract: str) -> None:
    plant(project, [(path, statement)])
    result = lint_imports(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert contract in broken(result), result.stdout
    module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    # The report names the planted edge, so a failure points at the line to fix.
    assert module in result.stdout


def test_contracts_allowDownwardImports(project: Path) -> None:
    plant(
        project,
        [
            ("marketplace/sim/__init__.py", "import agents.roles"),
            ("marketplace/registry/cli.py", "import agents.base"),
            ("agents/markets/__init__.py", "import agents.roles"),
            ("agents/markets/__init__.py", "import agents.testing"),
            ("agents/roles/__init__.py", "import agents.capabilities"),
            ("agents/capabilities/__init__.py", "import agents.base"),
            ("agents/capabilities/__init__.py", "import marketplace.chain"),
            ("agents/clock.py", "import marketplace.registry.client"),
            ("marketplace/blobstore.py", "import protocols.jobs"),
            ("protocols/errors.py", "import pydantic"),
        ],
    )
    result = lint_imports(project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sdkContract_failsOnAnUndeclaredAgentsModule(project: Path) -> None:
    (project / "agents" / "undeclared.py").write_text('"""A core module nobody gave a layer."""\n')
    result = lint_imports(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken(result) == {"sdk"}, result.stdout
    assert "agents.undeclared" in result.stdout


def test_stackContract_coversEveryMarketplaceModule() -> None:
    layers = CONTRACTS["stack"]["layers"]
    declared = {name.strip().strip("()") for layer in layers for name in layer.replace("|", ":").split(":")}
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "marketplace").rglob("*.py")
    }
    uncovered = {m for m in modules if not any(m == d or m.startswith(d + ".") for d in declared)}
    # Only the two package __init__ modules stay outside: `marketplace.registry` cannot be a layer while
    # its `cli` module sits in the top one.
    missing = uncovered - {"marketplace", "marketplace.registry"}
    assert not missing, f"give these modules a layer in pyproject.toml: {sorted(missing)}"
