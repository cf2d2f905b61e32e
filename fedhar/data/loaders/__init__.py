"""Format registry: one loader per published layout, and ``load`` with format autodetection."""

from __future__ import annotations

import inspect
import re
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.loaders.hapt import HaptStreams, SensorStream, load_hapt, read_hapt_streams
from fedhar.data.loaders.limu import load_limu
from fedhar.data.loaders import motionsense, usc_had
from fedhar.data.loaders.motionsense import load_motionsense, read_motionsense
from fedhar.data.loaders.npz import load_npz
from fedhar.data.loaders.smarthome import load_smarthome
from fedhar.data.loaders.synthetic import load_synthetic, make_synthetic
from fedhar.data.loaders.uci_har import load_uci_har
from fedhar.data.loaders.usc_had import load_usc_had, read_usc_had
from fedhar.data.loaders.wisdm import load_wisdm_raw, parse_wisdm_raw
from fedhar.exceptions import DataError
from fedhar.registry import Registry, check_options

Loader = Callable[..., WindowDataset]

FORMATS: Registry[Loader] = Registry("data format")
FORMATS.register("uci_har", load_uci_har)
FORMATS.register("hapt", load_hapt)
FORMATS.register("wisdm_raw", load_wisdm_raw)
FORMATS.register("limu", load_limu)
FORMATS.register("npz", load_npz)
FORMATS.register("synthetic", load_synthetic)
FORMATS.register("smarthome", load_smarthome)
FORMATS.register("motionsense", load_motionsense)
FORMATS.register("usc_had", load_usc_had)

FORMAT_NOTES: dict[str, Callable[[str | Path], list[str]]] = {
    "motionsense": motionsense.describe_motionsense,
    "usc_had": usc_had.describe_usc_had,
}
"""Formats whose ``fedhar data info`` adds lines the windows cannot show (counts as published, quirks)."""

_WISDM_LINE = re.compile(r"^\s*\d+\s*,\s*[A-Za-z_ ]+\s*,\s*\d+\s*,")


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from folder contents, zip members or the file name.

    Raises
    ------
    DataError
        When the path does not exist or matches no known layout.
    """
    if str(path) == "synthetic":
        return "synthetic"
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder.")
    if p.is_dir():
        names = {c.name for c in p.iterdir()}
        if "train" in names and (p / "train" / "Inertial Signals").is_dir() or "UCI HAR Dataset" in names:
            return "uci_har"
        if "RawData" in names or ("labels.txt" in names and any(n.startswith("acc_exp") for n in names)):
            return "hapt"
        if any(re.match(r"^data_\d+(\.\d+)?_\d+\.npy$", n) for n in names):
            return "limu"
        if names & {"ordonez", "kasteren2008", "kasteren2010"}:
            return "smarthome"
        if fmt := _recordings_folder(p, names):
            return fmt
        if any(n.startswith("WISDM") and n.endswith("_raw.txt") for n in names):
            raise DataError(f"{p}: looks like the WISDM folder; pass the file {p}/WISDM_ar_v1.1_raw.txt.")
        hint = f"entries: {', '.join(sorted(names)[:10]) or 'none'}"
    else:
        name = p.name
        if name.endswith(".zip"):
            try:
                with zipfile.ZipFile(p) as z:
                    members = z.namelist()
            except zipfile.BadZipFile:
                raise DataError(f"{p}: not a readable zip archive.") from None
            if any("Inertial Signals/" in m for m in members):
                return "uci_har"
            if any(motionsense.MEMBER.search(m) for m in members):
                return "motionsense"
            if any(usc_had.MEMBER.search(m) for m in members):
                return "usc_had"
            hint = f"zip members: {', '.join(members[:6])}"
        elif name.endswith(".npz"):
            try:
                with np.load(p, allow_pickle=False) as z:
                    keys = set(z.files)
            except (ValueError, OSError) as exc:
                raise DataError(f"{p}: cannot be read as a NumPy archive ({exc}).") from None
            return "hapt" if {"acc", "gyro", "label"} <= keys and "X" not in keys else "npz"
        elif re.match(r"^(data|label)_\d+(\.\d+)?_\d+\.npy$", name):
            return "limu"
        elif name.endswith(".txt"):
            if "wisdm" in name.lower():
                return "wisdm_raw"
            with p.open(errors="replace") as fh:
                first = next((ln for ln in fh if ln.strip()), "")
            if _WISDM_LINE.match(first):
                return "wisdm_raw"
            hint = f"first line: {first.strip()[:60]!r}"
        else:
            hint = "unknown file type"
    raise DataError(
        f"{p}: cannot detect the data format ({hint}). Pass it explicitly with format=... "
        f"(`data.format`), one of: {', '.join(FORMATS.names())}."
    )


def _recordings_folder(p: Path, names: set[str]) -> str | None:
    """``motionsense`` or ``usc_had`` for their unpacked folder (or the folder above, or one holding
    only their zip); None otherwise. Only the first level below ``p`` is looked into."""
    for fmt, module, top in (("motionsense", motionsense, motionsense.FOLDER), ("usc_had", usc_had, "USC-HAD")):
        if module.ZIP_NAME in names or (p / top).is_dir():
            return fmt
        for child in sorted(n for n in names if (p / n).is_dir()):
            if any(module.MEMBER.search(f"{child}/{f.name}") for f in (p / child).iterdir()):
                return fmt
    return None


def format_notes(path: str | Path, format: str) -> list[str]:
    """Extra ``fedhar data info`` lines for ``format`` (reads ``path`` again; empty for most formats)."""
    notes = FORMAT_NOTES.get(format)
    return notes(path) if notes else []


def loader_options(format: str) -> list[str]:
    """Keyword options the loader of ``format`` accepts."""
    fn = FORMATS.get(format, where="data.format")
    if format == "synthetic":
        return ["nan_policy", *inspect.signature(make_synthetic).parameters]
    params = list(inspect.signature(fn).parameters.values())[1:]
    return [q.name for q in params if q.kind in (q.KEYWORD_ONLY, q.POSITIONAL_OR_KEYWORD)]


def load(path: str | Path, format: str = "auto", **options) -> WindowDataset:
    """Load ``path`` as a :class:`WindowDataset`.

    Parameters
    ----------
    path : str or Path
        A file or folder in a published layout, or ``"synthetic"``.
    format : str
        ``"auto"`` (detect) or one of ``FORMATS.names()``.
    **options
        Loader options (e.g. ``window``, ``step``, ``nan_policy``, ``strict``, ``rate_hz``).

    Raises
    ------
    ConfigError
        Unknown format or option.
    DataError
        Missing or malformed data.
    """
    fmt = detect_format(path) if format == "auto" else format
    loader = FORMATS.get(fmt, where="data.format")
    check_options(options, loader_options(fmt), f"data format `{fmt}` (in `data.options`)")
    return loader(path, **options)


__all__ = [
    "FORMATS", "FORMAT_NOTES", "HaptStreams", "SensorStream", "detect_format", "format_notes", "load", "load_hapt",
    "load_limu", "load_motionsense", "load_npz", "load_synthetic", "load_uci_har", "load_usc_had", "load_wisdm_raw",
    "loader_options", "make_synthetic", "parse_wisdm_raw", "read_hapt_streams", "read_motionsense", "read_usc_had",
]
