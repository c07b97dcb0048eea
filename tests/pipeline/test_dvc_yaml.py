"""dvc.yaml and the stage scripts agree: every key a stage reads is a tracked param, and no other."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from pix2pix.keys import lookup

REPO = Path(__file__).resolve().parents[2]
PIPELINE = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def stage_module(stage: dict) -> str:
    command = stage["cmd"].split()
    assert command[:2] == ["python", "-m"], f"stage command {stage['cmd']!r} should be `python -m stages.<name>`"
    return command[2]


@pytest.mark.parametrize("name", sorted(PIPELINE))
def test_stage_params_equal_the_keys_its_code_reads(name: str) -> None:
    module = importlib.import_module(stage_module(PIPELINE[name]))
    assert sorted(PIPELINE[name].get("params", [])) == sorted(module.USES)


@pytest.mark.parametrize("name", sorted(PIPELINE))
def test_stage_depends_on_its_own_script(name: str) -> None:
    script = stage_module(PIPELINE[name]).replace(".", "/") + ".py"
    assert script in PIPELINE[name]["deps"]


@pytest.mark.parametrize("name", sorted(PIPELINE))
def test_every_listed_param_exists_in_params_yaml(name: str) -> None:
    for key in PIPELINE[name].get("params", []):
        lookup(PARAMS, key)


def test_pipeline_has_the_contract_stage_names() -> None:
    assert {"download", "prepare", "split", "train", "evaluate"} <= set(PIPELINE)


def test_contract_top_level_params_are_flat() -> None:
    for key in ("dataset", "direction", "image_size", "batch_size", "epochs", "lr", "lambda_l1", "seed"):
        assert not isinstance(PARAMS[key], dict)


def project_imports(path: Path) -> set[str]:
    """Files of this project that ``path`` imports, transitively (``pix2pix/x.py``, ``stages/y.py``)."""
    import ast

    found: set[str] = set()
    pending = [path]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                # `from pix2pix import sample` imports the module pix2pix/data/sample.py
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.split(".")[0] in ("pix2pix", "stages") and name not in ("pix2pix", "stages"):
                    relative = name.replace(".", "/") + ".py"
                    if relative not in found and (REPO / relative).is_file():
                        found.add(relative)
                        pending.append(REPO / relative)
    return found


@pytest.mark.parametrize("name", sorted(PIPELINE))
def test_stage_deps_list_exactly_the_modules_its_code_runs(name: str) -> None:
    script = stage_module(PIPELINE[name]).replace(".", "/") + ".py"
    runs = project_imports(REPO / script) | {script}
    listed = {dep for dep in PIPELINE[name]["deps"] if dep.endswith(".py")}
    assert not runs - listed, f"stage {name} runs {sorted(runs - listed)} but dvc.yaml does not list them as deps"
    # A stale entry (a moved or no longer imported module) would re-run the stage for nothing, or fail DVC.
    assert not listed - runs, f"stage {name} lists {sorted(listed - runs)} as deps but does not import them"
