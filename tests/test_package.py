"""Every subpackage imports (catches a module left out of the package), and the console script exists."""

import importlib
import pkgutil
import shutil
from pathlib import Path

import fedhar


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(fedhar.__path__, "fedhar.")]
    assert {"fedhar.data.loaders", "fedhar.models.backbones", "fedhar.federated.client_app",
            "fedhar.federated.deployment.flower", "fedhar.training.loop"} <= set(names)
    for name in names:
        importlib.import_module(name)


def test_console_script_installed():
    import sys

    assert shutil.which("fedhar") or (Path(sys.executable).parent / "fedhar").exists()
