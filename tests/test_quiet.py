"""Known dependency warnings are filtered (here and, via PYTHONWARNINGS, in child processes);
fedhar's own warnings, and anything not on the list, still show."""

import importlib.util
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from fedhar import quiet

FLWR_TEMPLATE = """DEPRECATED FEATURE: %s

            This is a deprecated feature. It will be removed
            entirely in future versions of Flower.
        """
FLWR_TEXT = ("The `run_simulation` function is deprecated and will be removed in a future version of Flower. "
             "Please use `flwr run` in the CLI instead to run your simulation.")
BNB_TEMPLATE = ("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
                "`pip install kernels` and the kernels >= 0.11.1")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    """Filters and PYTHONWARNINGS restored after each test (pytest restores warnings filters itself)."""
    monkeypatch.delenv(quiet.ENV, raising=False)
    yield
    quiet.remove_known_log_filters()


def _package_file(package: str, relative: str) -> str:
    """Source text of a dependency's file, found without importing it."""
    spec = importlib.util.find_spec(package)
    return (Path(spec.submodule_search_locations[0]) / relative).read_text()


def test_the_filtered_texts_are_the_installed_dependencies_own():
    """The filters match the messages these versions really emit (a changed text shows again)."""
    assert "The `run_simulation` function is deprecated" in _package_file("flwr", "simulation/run_simulation.py")
    assert '"""DEPRECATED FEATURE: %s' in _package_file("flwr", "supercore/logger.py")
    assert BNB_TEMPLATE.split(": %s")[0] in _package_file("bitsandbytes", "backends/cpu/ops.py")
    script = _package_file("torch", "jit/_script.py")
    assert '"`torch.jit.script_method` is deprecated.' in script and "DeprecationWarning" in script


def _warn_from(module: str, message: str, category: type[Warning]) -> None:
    """``warnings.warn`` as if called inside ``module`` (the filter matches the caller's __name__)."""
    exec("import warnings\nwarnings.warn(message, category)", {"__name__": module, "message": message,
                                                               "category": category})


def test_torch_jit_is_filtered_and_fedhar_warnings_still_show():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet.install_known_filters()
        _warn_from("torch.jit._script", "`torch.jit.script_method` is deprecated. Please switch.", DeprecationWarning)
        _warn_from("torch.jit._trace", "`torch.jit.trace` is deprecated. Please switch.", DeprecationWarning)
        _warn_from("fedhar.something", "x", UserWarning)
        _warn_from("fedhar.something", "`torch.jit.script` is deprecated, says fedhar", DeprecationWarning)
        _warn_from("torch.jit._script", "something else entirely", DeprecationWarning)
    shown = [(str(w.message), w.category) for w in seen]
    assert shown == [("x", UserWarning), ("`torch.jit.script` is deprecated, says fedhar", DeprecationWarning),
                     ("something else entirely", DeprecationWarning)]


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("logger_name, template, arg, other", [
    ("flwr", FLWR_TEMPLATE, FLWR_TEXT, "Starting Flower ServerApp"),
    ("bitsandbytes.backends.cpu.ops", BNB_TEMPLATE, ModuleNotFoundError("No module named 'kernels'"),
     "Register pytorch bitsandbytes kernels"),
])
def test_known_log_records_are_filtered_and_others_pass(logger_name, template, arg, other):
    logger, ours, capture = logging.getLogger(logger_name), logging.getLogger("fedhar.something"), _Capture()
    for lg in (logger, ours):
        lg.addHandler(capture)
    try:
        quiet.install_known_filters()
        logger.warning(template, arg)
        logger.warning(other)
        ours.warning(template, arg)  # the same text from fedhar's own logger is never filtered
    finally:
        for lg in (logger, ours):
            lg.removeHandler(capture)
    assert capture.messages == [other, template % arg]


def test_pythonwarnings_is_extended_not_replaced(monkeypatch):
    monkeypatch.setenv(quiet.ENV, "error::ResourceWarning")
    quiet.install_known_filters()
    quiet.install_known_filters()  # a second call adds nothing
    entries = __import__("os").environ[quiet.ENV].split(",")
    assert entries[0] == "error::ResourceWarning"
    assert entries[1:] == [w.option() for w in quiet.KNOWN_WARNINGS]
    assert "ignore:`torch.jit.:DeprecationWarning:torch.jit._script" in entries


def test_child_processes_inherit_the_filters():
    """A fresh interpreter (as a Ray worker is) applies the entries: valid -W syntax, same effect."""
    code = ("import warnings\n"
            "def warn(module, message, category):\n"
            "    exec('import warnings; warnings.warn(m, c)', {'__name__': module, 'm': message, 'c': category})\n"
            "warn('torch.jit._script', '`torch.jit.script_method` is deprecated.', DeprecationWarning)\n"
            "warn('torch.jit._serialization', '`torch.jit.save` is deprecated.', DeprecationWarning)\n"
            "warn('fedhar.something', 'fedhar speaks', UserWarning)\n")
    env = {quiet.ENV: quiet.extended_pythonwarnings("default")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "fedhar speaks" in res.stderr and "torch.jit" not in res.stderr
    assert "Invalid -W option" not in res.stderr
    control = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             env={quiet.ENV: "default"})
    assert "`torch.jit.script_method` is deprecated" in control.stderr  # the filter, not the default, hid it
