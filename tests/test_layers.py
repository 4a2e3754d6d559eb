"""The package layers: a lower layer never imports a higher one.

    util  <-  model  <-  inference_core  <-  interactive  <-  interactive_demo.py
    util  <-  dataset, model  <-  training  <-  train.py
    every package  <-  the other entry scripts (eval_*.py, ...), scripts/

Every import of every module counts, also those inside functions. Packages of the
same layer do not import each other (inference and training stay apart), and the
network needs no data code: ``model`` imports ``util`` only. ``dataset`` is training
data only: the videos inference runs on are read by ``inference_core/data/`` (the
evaluation readers, frame sources, objects), so inference and the demo import no
``dataset`` and ``dataset`` imports neither. The interactive demo's session has no
UI in it: gradio is imported by the page's modules alone (UI_MODULES).
"""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The packages each package may import (besides itself).
ALLOWED = {
    "util": set(),
    "dataset": {"util"},
    "model": {"util"},
    "inference_core": {"util", "model"},
    "training": {"util", "dataset", "model"},
    "interactive": {"util", "model", "inference_core"},
}
# Names of the modules that read the videos inference runs on (inference_core/data/): none of them in dataset/.
INFERENCE_DATA = ("eval_datasets", "frame_sources", "readers")
# The page: its state and handlers, the canvas component and the layout. The session, its store, the
# annotations and the tools stay free of gradio (usable from Python without it).
UI_MODULES = sorted(os.path.join("interactive", name) for name in ("app.py", "canvas.py", "page.py"))


def imported_packages(source, package):
    """(line, top-level name) of every import in ``source`` (a module of ``package``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, package if node.level else (node.module or "").split(".")[0]))
    return found


def violations(source, package, where):
    """Imports of ``source`` that break the layers, as readable lines."""
    return [f"{where}:{line}: {package} imports {name} (it may import {sorted(ALLOWED[package]) or 'nothing'})"
            for line, name in imported_packages(source, package)
            if name in ALLOWED and name != package and name not in ALLOWED[package]]


def package_modules():
    for package in ALLOWED:
        folder = os.path.join(REPO, package)
        for root, _, files in os.walk(folder):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield package, os.path.join(root, name)


def test_every_package_exists():
    missing = [p for p in ALLOWED if not os.path.isfile(os.path.join(REPO, p, "__init__.py"))]
    assert missing == []


def test_no_lower_layer_imports_a_higher_one():
    found = []
    for package, path in package_modules():
        with open(path, encoding="utf-8") as f:
            found += violations(f.read(), package, os.path.relpath(path, REPO))
    assert found == []


def test_dataset_holds_training_data_only():
    """No evaluation reader or frame source in dataset/ (they are inference_core/data/'s), and no module of
    dataset/ imports inference or the demo (ALLOWED says so too; this holds whatever ALLOWED says)."""
    misplaced, imports = [], []
    for package, path in package_modules():
        where = os.path.relpath(path, REPO)
        if package != "dataset":
            continue
        if any(part in INFERENCE_DATA for part in os.path.splitext(where)[0].split(os.sep)):
            misplaced.append(where)
        with open(path, encoding="utf-8") as f:
            imports += [f"{where}:{line}: {name}" for line, name in imported_packages(f.read(), package)
                        if name in ("inference_core", "interactive")]
    assert misplaced == [] and imports == []
    assert all(os.path.isfile(os.path.join(REPO, "inference_core", "data", name + ".py"))
               for name in ("frame_sources", "readers", "objects"))


def test_only_the_ui_modules_import_gradio():
    importers = []
    for root, _, files in os.walk(REPO):
        if any(part.startswith(".") or part in ("venv", "node_modules") for part in root.split(os.sep)):
            continue
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".py") and not path.startswith(os.path.join(REPO, "tests")):
                with open(path, encoding="utf-8") as f:
                    if any(found == "gradio" for _, found in imported_packages(f.read(), "")):
                        importers.append(os.path.relpath(path, REPO))
    assert sorted(importers) == UI_MODULES


@pytest.mark.parametrize("package,source,bad", [
    ("model", "import torch\nfrom util.config import PRESETS\n", False),
    ("model", "def f():\n    from inference_core.sampler import IsogenousSampler\n", True),  # inside a function
    ("model", "import dataset.vos_dataset\n", True),
    ("dataset", "from inference_core.data.readers import DavisSet\n", True),
    ("dataset", "def f():\n    import inference_core.data.frame_sources\n", True),
    ("inference_core", "from dataset.synthetic import make_davis_dataset\n", True),  # inference reads no training data
    ("interactive", "from dataset import DatasetError\n", True),
    ("inference_core", "from inference_core.data import SequenceError\n", False),
    ("util", "from dataset import DatasetError\n", True),
    ("inference_core", "from training.trainer import Trainer\n", True),  # same layer, other package
    ("training", "from inference_core.core import InferenceCore\n", True),
    ("inference_core", "from . import sampler\nfrom model.network import IMSFR\n", False),
    ("inference_core", "from interactive.session import Session\n", True),
    ("interactive", "from inference_core.build import build_core\n", False),
])
def test_the_check_sees_a_violation(package, source, bad):
    assert bool(violations(source, package, "example.py")) == bad
