"""The package's shape: every module imports from anywhere once installed, and imports run one way.

Layers, lowest first (a module may import its own layer and the ones its row lists):
    common      device, seed, checkpoints, metric, training loop: knows no data format
    readers     Data/: the format, validated readers, datasets (not the generator, not the world)
    world       Data/world.py: camera, floor-plane view, motion law, disc simulation
    generator   Data/synth/, Data/generate.py
    models      the networks, the extrapolation's physics, the model registry (models/)
    predictors  predictors/: the registry inference, the demo and the benchmarks loop over
    training    trainers, pseudo-labels, the extrapolation's fit: they make models, and run none of the predictors
    inference   Unets/inference.py and its four presets: the pipeline over the predictors
    scripts     demo.py, benchmarks/, tools that mix everything (Data/stats.py reads masks through a U-Net)
Every import counts, function-level ones too: a lazy import hides a wrong direction, it does not mend it.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO

MAY_IMPORT = {
    "common": {"common"},
    "readers": {"common", "readers"},
    "world": {"common", "readers", "world"},
    "generator": {"common", "readers", "world", "generator"},
    "models": {"common", "readers", "world", "models"},
    "predictors": {"common", "readers", "world", "models", "predictors"},
    "training": {"common", "readers", "world", "models", "training"},
    "inference": {"common", "readers", "world", "models", "predictors", "inference"},
    "scripts": {"common", "readers", "world", "generator", "models", "predictors", "training", "inference", "scripts"},
}
# The longest matching prefix decides a module's layer.
LAYER_OF = {
    "common": "common",
    "Data": "readers",
    "Data.world": "world",
    "Data.synth": "generator",
    "Data.generate": "generator",
    "Data.stats": "scripts",
    "Unets": "inference",
    "Unets.train": "training",
    "Unets.unet_parts": "models",
    "Unets.unet_model": "models",
    "Unets.segmentation": "models",
    "SSL_convLSTM_Reconstructor": "training",
    "SSL_convLSTM_Reconstructor.convlstm": "models",
    "SSL_convLSTM_Reconstructor.reconstructor_model": "models",
    "SSL_convLSTM_Reconstructor.mask_simvp": "models",
    "SSL_convLSTM_Reconstructor.mask_hybrid": "models",
    "SSL_convLSTM_Reconstructor.object_gate": "models",
    "SSL_convLSTM_Reconstructor.extrapolation": "models",
    "models": "models",
    "predictors": "predictors",
    "demo": "scripts",
    "benchmarks": "scripts",
    "tools": "scripts",
}
NOT_PACKAGE = {"tests", ".venv", ".git", "docs", "results"}


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def project_modules() -> dict[str, Path]:
    """Every module of the repo outside tests/, by dotted name."""
    found = {}
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0] in NOT_PACKAGE or rel.parts[0].startswith("."):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in LAYER_OF:
            return LAYER_OF[".".join(parts[:k])]
    return None


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """The repo's modules that `module` imports anywhere in its file (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import submodule` imports the submodule; `from mod import name` the module
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            hit = next((".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in known), None)
            if hit and hit != module:
                out.add(hit)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: imports_of(p, m, set(modules)) for m, p in modules.items()}


def wrong_directions(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} ({layer(m)}) imports {t} ({layer(t)})" for m, targets in sorted(graph.items())
            for t in sorted(targets) if layer(t) not in MAY_IMPORT[layer(m)]]


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the modules, or None."""
    state: dict[str, int] = {}      # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_every_module_has_a_layer():
    assert not [m for m in project_modules() if layer(m) is None], "add the new module's folder to LAYER_OF"


def test_imports_run_one_way():
    assert wrong_directions(import_graph()) == []


def test_no_import_cycle():
    assert cycle(import_graph()) is None


def test_the_checks_catch_a_wrong_import(tmp_path):
    """Readers reaching up to a model, a predictor reaching into the generator, common into Data: all caught."""
    graph = import_graph()
    graph["Data.reading"] = graph["Data.reading"] | {"Unets.unet_model"}
    graph["predictors.mask_extrapolation"] = graph["predictors.mask_extrapolation"] | {"Data.synth.scene"}
    graph["common.metrics"] = graph["common.metrics"] | {"Data.layout"}
    assert wrong_directions(graph) == [
        "Data.reading (readers) imports Unets.unet_model (models)",
        "common.metrics (common) imports Data.layout (readers)",
        "predictors.mask_extrapolation (predictors) imports Data.synth.scene (generator)"]
    graph["models"] = graph["models"] | {"predictors.base"}
    graph["predictors.base"] = graph["predictors.base"] | {"models"}
    assert cycle(graph) is not None
    # ...and the parser sees function-level and `from package import module` imports.
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from Data import generate\n    import Unets.unet_model\n")
    assert imports_of(lazy, "common.lazy", set(project_modules())) == {"Data.generate", "Unets.unet_model"}


def test_no_module_edits_sys_path():
    """The editable install finds every module; a path edit would let a script run from one folder only."""
    edit = re.compile(r"sys\.path\.(insert|append)\(|noqa: E40[2]")
    files = [*project_modules().values(), *sorted((REPO / "tests").glob("*.py"))]
    found = [f"{p.relative_to(REPO)}:{k}" for p in files for k, line in enumerate(p.read_text().splitlines(), 1)
             if edit.search(line)]
    assert found == []


def test_pyproject_installs_every_package():
    listed = set(pyproject()["tool"]["setuptools"]["packages"]["find"]["include"])
    top = {m.split(".")[0] for m, p in project_modules().items() if p.name == "__init__.py"}
    assert top <= listed, f"packages missing from pyproject.toml's include: {sorted(top - listed)}"


def test_every_module_imports_in_a_fresh_process_outside_the_repo(tmp_path):
    """Run from a folder that is not the checkout: only the editable install can find the modules."""
    modules = project_modules()
    packaged = sorted(m for m in modules if (REPO / m.split(".")[0] / "__init__.py").exists() or m == "demo")
    tops = sorted({m.split(".")[0] for m in packaged})
    code = f"""import importlib, sys
repo = sys.argv[1]
for m in {packaged!r}:
    importlib.import_module(m)
elsewhere = [m for m in sys.modules if m.split(".")[0] in {tops!r}
             and not (getattr(sys.modules[m], "__file__", None) or "").startswith(repo)]
assert not elsewhere, elsewhere
assert repo not in [p.rstrip("/") for p in sys.path], "the checkout is on sys.path"
"""
    res = subprocess.run([sys.executable, "-c", code, str(REPO)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def test_scripts_run_by_path_from_the_root_and_from_their_folder():
    """A benchmark importing its sibling, and a script in a sub-package (tests/test_cli_fuzz.py runs the others)."""
    scripts = ["benchmarks/bench_accuracy.py", "SSL_convLSTM_Reconstructor/fit_extrapolation.py"]
    runs = [subprocess.Popen([sys.executable, argv, "--help"], cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for script in scripts for argv, cwd in ((script, REPO), (Path(script).name, REPO / Path(script).parent))]
    for proc in runs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.startswith("usage:"), err[-2000:]
