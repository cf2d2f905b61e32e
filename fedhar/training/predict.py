"""``fedhar predict``: a finished run's saved model on new windows, with metrics where labels allow.

What can be predicted with:

* a run folder holding ``config.yaml`` and ``model/`` (central runs; federated runs save the same
  format), or that ``model/`` folder itself;
* a client's personal model: ``<run>/clients/client_NNNN`` (the folder, when it holds one state
  file) or a state file in it (``personal.safetensors`` of a FedPer federation,
  ``<strategy>.safetensors`` of the personalisation study). Personal files hold only the entries
  the client changed; they go on top of the global model, ``<run>/model`` or, for the
  personalisation study, ``<run>/global/model``.

Not supported, with an error saying so: classical (random forest) runs (their forest is saved
for ``fedhar export``, not predict);
text models with ``model.text.trim_vocab`` (the trimmed vocabulary comes from the training texts,
which the saved model does not carry).

The data are loaded as the run loaded its own (its ``data:`` section, so the same channels,
rate, window and label mapping), with ``source`` replaced by DATA and every window kept:
``max_windows`` is dropped, no split is made, and loader ``options`` the new source's loader does
not take are left out. The normaliser is not refitted: its statistics are part of the saved state.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from fedhar.config import ExperimentConfig, load_config
from fedhar.data.config import DataConfig
from fedhar.data.dataset import WindowDataset
from fedhar.data.loaders import detect_format, loader_options
from fedhar.data.loaders.npz import UNLABELLED
from fedhar.data.sources import KNOWN_SOURCES, load_source, resolve_source
from fedhar.exceptions import ConfigError, DataError, ModelError
from fedhar.models import NON_NEURAL, build_model
from fedhar.models.checkpoint import STATE_FILE, load_model_state
from fedhar.models.har_model import HARModel
from fedhar.reporting import confusion_matrix_png, write_json
from fedhar.training.config import TrainConfig
from fedhar.training.loop import predict_logits
from fedhar.training.metrics import classification_metrics, per_class_f1

log = logging.getLogger(__name__)

MODEL = "model"
CONFIG = "config.yaml"
CLIENTS = "clients"


@dataclass
class SavedModel:
    """Where a run's saved model lives: the folder with its ``config.yaml``, its ``model/``, and
    optionally one client's personal state that goes on top of it."""

    run_dir: Path
    model_dir: Path
    personal: Path | None = None

    @property
    def label(self) -> str:
        """Suffix of default output names: which client and personal state, if any."""
        return f"_{self.personal.parent.name}_{self.personal.stem}" if self.personal else ""

    @property
    def home(self) -> Path:
        """The run folder outputs go to: the one holding ``clients/`` for a personal model."""
        return self.personal.parent.parent.parent if self.personal else self.run_dir


# ----------------------------------------------------------------------------- locating the model
def locate(path: str | Path) -> SavedModel:
    """The saved model that ``path`` names (run folder, ``model/`` folder, or a client's personal state).

    Raises
    ------
    ConfigError
        When ``path`` is none of these (the message says what was looked for).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"{p}: no such run folder; predict needs a finished run's folder (config.yaml and model/).")
    if (p.is_dir() and p.parent.name == CLIENTS) or (p.is_file() and p.parent.parent.name == CLIENTS):
        return _locate_personal(p)
    if p.is_file():
        raise ConfigError(f"{p}: expected a run folder, its model/ folder, or a client's personal state file "
                          f"under {CLIENTS}/client_NNNN/.")
    if (p / STATE_FILE).is_file():
        _need_config(p.parent, p)
        return SavedModel(p.parent, p)
    _need_config(p, p)
    return SavedModel(p, p / MODEL)


def _need_config(run_dir: Path, given: Path) -> None:
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(f"{given}: not a run folder: {run_dir / CONFIG} does not exist (predict needs the run's "
                          f"saved config.yaml beside its model/ folder).")


def _locate_personal(p: Path) -> SavedModel:
    """A client's personal state file, on top of the global model of the run that wrote it."""
    client = p.parent if p.is_file() else p
    if p.is_file():
        state = p
    else:
        files = sorted(client.glob("*.safetensors"))
        if len(files) != 1:
            found = ", ".join(f.name for f in files) or "none"
            raise ConfigError(f"{client}: expected one personal state file (*.safetensors), found {found}; "
                              f"pass the file itself, e.g. {client / (files[0].name if files else 'personal.safetensors')}.")
        state = files[0]
    base = client.parent.parent
    tried = [base / MODEL, base / "global" / MODEL]  # a federation's own model; the personalisation study's global one
    model_dir = next((t for t in tried if (t / STATE_FILE).is_file()), None)
    if model_dir is None:
        raise ConfigError(f"{state}: personal state holds only the entries the client changed and goes on top of the "
                          f"global model, but none was found; looked for {', '.join(str(t) for t in tried)}.")
    _need_config(model_dir.parent, state)
    return SavedModel(model_dir.parent, model_dir, state)


def check_neural(saved: SavedModel, cfg: ExperimentConfig) -> None:
    """A classical run saves no model; a neural run without ``model/`` is unfinished or saved none."""
    if (saved.model_dir / STATE_FILE).is_file():
        return
    if cfg.model.backbone.name in NON_NEURAL:
        raise ConfigError(f"{saved.run_dir}: a classical run (`model.backbone.name: {cfg.model.backbone.name}`) is not "
                          "supported by predict, which needs a neural run's model/ folder (its saved forest runs "
                          "through `fedhar export` to ONNX).")
    nested = sorted(str(d) for d in saved.run_dir.iterdir() if (d / MODEL / STATE_FILE).is_file())
    hint = f" Runs with a saved model inside it: {', '.join(nested)}." if nested else \
        " The run may be unfinished, or a study that saves no model."
    raise ConfigError(f"{saved.run_dir}: no saved model ({saved.model_dir / STATE_FILE} does not exist); predict "
                      f"needs a neural run's model/ folder.{hint}")


def read_metadata(model_dir: Path) -> dict[str, object]:
    """Backbone, classes and channels recorded by ``save_model`` in the state file's metadata."""
    from safetensors import safe_open

    path = model_dir / STATE_FILE
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    missing = [k for k in ("backbone", "classes", "channels") if k not in meta]
    if missing:
        raise ModelError(f"{path}: the saved model records no {', '.join(missing)} in its metadata; "
                         "save it again with fedhar.models.checkpoint.save_model.")
    return {"backbone": meta["backbone"], "classes": tuple(meta["classes"].split("\n")),
            "channels": tuple(meta["channels"].split("\n"))}


# ------------------------------------------------------------------------------------- the data
def data_name(data: str) -> str:
    """Name of DATA in output files: a known source's name, or a path's file stem."""
    return data if data in KNOWN_SOURCES or data == "synthetic" else Path(data).stem


def data_config(run_data: DataConfig, data: str, root: str | None) -> DataConfig:
    """The run's ``data:`` section with ``source`` replaced by ``data``, every window kept, and only
    the loader options the new source's loader takes."""
    root = root if root is not None else run_data.root
    if data == run_data.source:
        return dataclasses.replace(run_data, root=root, max_windows=None)
    fmt = detect_format(resolve_source(data, root))
    accepted = set(loader_options(fmt))
    options = {k: v for k, v in run_data.options.items() if k in accepted}
    if "require_labels" in accepted:  # a generic archive may hold windows to predict and no labels
        options["require_labels"] = False
    dropped = sorted(set(run_data.options) - set(options))
    if dropped:
        log.info("predict: leaving out the run's loader options %s (format %s does not take them)", dropped, fmt)
    return dataclasses.replace(run_data, source=data, root=root, format="auto", options=options, max_windows=None)


def load_data(cfg: DataConfig, run_dir: Path) -> WindowDataset:
    """All windows of ``cfg.source``; errors say they came from the run's ``data:`` section."""
    resolve_source(cfg.source, cfg.root)  # an unknown name or missing path: its own clear error
    try:
        ds = load_source(cfg, where="data")
    except ConfigError as exc:  # a channel or label mapping of the run's dataset that DATA does not fit
        raise ConfigError(f"loading `{cfg.source}` with the `data:` section of {run_dir / CONFIG}: {exc.reason} "
                          "Change that section for predict with overrides (e.g. data.labels={}).") from None
    if len(ds) == 0:
        raise DataError(f"`{cfg.source}` holds no windows to predict.")
    return ds


def subjects_known(cfg: DataConfig) -> bool:
    """Whether the data carries subject ids (a generic .npz may leave them out; the loader then fills 0)."""
    path = resolve_source(cfg.source, cfg.root)
    if (cfg.format if cfg.format != "auto" else detect_format(path)) != "npz":
        return True
    with np.load(path, allow_pickle=False) as z:
        return "subject" in z.files


def match_channels(ds: WindowDataset, channels: tuple[str, ...], model_dir: Path) -> WindowDataset:
    """``ds`` with the model's channels in the model's order; a missing channel is a DataError."""
    if ds.channels == channels:
        return ds
    missing = [c for c in channels if c not in ds.channels]
    if missing:
        raise DataError(f"`{ds.name}` has channels [{', '.join(ds.channels)}] but the model in {model_dir} takes "
                        f"[{', '.join(channels)}] (missing: {', '.join(missing)}); rename them with the override "
                        "data.channels={<name>: <sensor>_<axis>, ...}.")
    extra = [c for c in ds.channels if c not in channels]
    if extra:
        log.info("predict: leaving out channels %s, which the model does not take", ", ".join(extra))
    return ds.select_channels(channels)


def check_rate(ds: WindowDataset, run_dir: Path) -> None:
    """Windows at another rate than the model was trained on would be read as other movements."""
    try:
        trained = json.loads((run_dir / "results.json").read_text())["data"]["train"]["rate_hz"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # not recorded: nothing to check against
    if trained and abs(float(trained) - ds.rate_hz) > 1e-6:
        raise DataError(f"`{ds.name}` is sampled at {ds.rate_hz:g} Hz but the model in {run_dir} was trained on "
                        f"{float(trained):g} Hz windows; resample it with the override data.rate_hz={float(trained):g}.")


# ------------------------------------------------------------------------------------ the model
def load_saved_model(cfg: ExperimentConfig, saved: SavedModel, meta: dict, window_length: int,
                     rate_hz: float | None = None, units: tuple[str, ...] | None = None) -> HARModel:
    """The run's model rebuilt from its config and saved state; the normaliser comes from the state
    (never refitted), a client's personal entries go on top."""
    if meta["backbone"] != cfg.model.backbone.name:
        raise ModelError(f"{saved.model_dir}: the saved model has backbone `{meta['backbone']}` but the config says "
                         f"`model.backbone.name: {cfg.model.backbone.name}`; drop that override.")
    if cfg.model.text.trim_vocab and meta["channels"] == ("token",):
        raise ModelError(f"{saved.model_dir}: predict does not support text models with `model.text.trim_vocab` "
                         "(the trimmed vocabulary is taken from the training texts, which are not saved).")
    model = build_model(cfg.model, meta["channels"], window_length, meta["classes"], cfg.seed, rate_hz=rate_hz,
                        units=units if units is not None and len(units) == len(meta["channels"]) else None)
    load_model_state(model, saved.model_dir)
    if saved.personal is not None:
        from safetensors.torch import load_file

        model.load_trainable_state({**model.trainable_state(), **load_file(str(saved.personal))},
                                   where=str(saved.personal))
    return model


def predict_probabilities(model: HARModel, X: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Class probabilities ``(N, K)``, through the training loop's inference helper, a chunk at a
    time so a progress bar can follow large data."""
    chunk = cfg.eval_batch_size * 16
    parts = []
    for i in tqdm(range(0, len(X), chunk), desc="predict", disable=None if cfg.progress else True, leave=False):
        logits = predict_logits(model, X[i : i + chunk], cfg.eval_batch_size, cfg.precision)
        parts.append(torch.softmax(torch.from_numpy(logits), dim=1).numpy())
    return np.concatenate(parts)


# ---------------------------------------------------------------------------------- the outputs
def write_predictions(out: Path, ds: WindowDataset, probs: np.ndarray, classes: tuple[str, ...], subjects: bool) -> None:
    """One row per window: index, subject (when known), true and predicted class, ``p_<class>``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    pred = probs.argmax(1)
    head = ["index", *(["subject"] if subjects else []), "true", "predicted", *(f"p_{c}" for c in classes)]
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for i in range(len(ds)):
            true = "" if unlabelled(ds) else ds.classes[ds.y[i]]
            w.writerow([i, *([int(ds.subject[i])] if subjects else []), true, classes[pred[i]],
                        *(f"{p:.6g}" for p in probs[i])])


def unlabelled(ds: WindowDataset) -> bool:
    """An archive loaded without ``y``: predictions only."""
    return tuple(ds.classes) == (UNLABELLED,)


def score(ds: WindowDataset, pred: np.ndarray, classes: tuple[str, ...]) -> dict | None:
    """Metrics over the windows whose true class the model knows; None when it knows none of them."""
    if unlabelled(ds):
        log.info("predict: %s has no labels (`y`); writing predictions only", ds.name)
        return None
    index = {c: i for i, c in enumerate(classes)}
    truth = np.array([index.get(ds.classes[y], -1) for y in ds.y], dtype=np.int64)
    known = truth >= 0
    unknown = sorted({ds.classes[y] for y in ds.y[~known]})
    if unknown:
        log.info("predict: %d of %d windows have classes the model does not know (%s); metrics leave them out",
                 int((~known).sum()), len(ds), ", ".join(unknown))
    if not known.any():
        return None
    m = classification_metrics(truth[known], pred[known], len(classes))
    return {"windows": int(known.sum()), "unknown_class_windows": int((~known).sum()), "unknown_classes": unknown,
            "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "per_class_f1": per_class_f1(m["confusion"], classes),
            "confusion": {"classes": list(classes), "matrix": m["confusion"]}}


def write_metrics(out: Path, metrics: dict, title: str) -> Path:
    """``<out stem>_metrics.json`` and ``<out stem>_confusion.png`` beside the predictions."""
    path = out.with_name(f"{out.stem}_metrics.json")
    write_json(path, metrics)
    png = out.with_name(f"{out.stem}_confusion.png")
    try:
        confusion_matrix_png(png, metrics["confusion"]["matrix"], metrics["confusion"]["classes"],
                             f"{title}: macro-F1 {metrics['macro_f1']:.3f}")
    except Exception as exc:  # a broken plot must not lose the predictions
        log.warning("plot %s failed: %s", png, exc)
    return path


def output_path(out: str | Path | None, saved: SavedModel, data: str) -> Path:
    if out is None:
        return saved.home / "predictions" / f"{data_name(data)}{saved.label}.csv"
    out = Path(out).expanduser()
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"predict output {out}: expected a .csv file name (predictions are written as CSV).")
    return out


# ---------------------------------------------------------------------------------------- entry
def predict_run(run_dir: str | Path, data: str, out: str | Path | None = None, root: str | None = None,
                overrides: str | Iterable[str] = ()) -> dict:
    """Predict every window of ``data`` with the model saved in ``run_dir``; write the predictions
    CSV and, when the data's classes include some of the model's, metrics JSON and confusion plot.

    Parameters
    ----------
    run_dir : str or Path
        A run folder, its ``model/`` folder, or a client's personal state (see the module docstring).
    data : str
        A source name resolved under ``root`` (uci_har, wisdm, hapt, ...) or a path, e.g. a generic ``.npz``.
    out : str or Path, optional
        Predictions CSV; default ``<run>/predictions/<data name>.csv``.
    root : str, optional
        Data folder; default the run's ``data.root``, then ``$FEDHAR_DATA_DIR``.
    overrides : str or iterable of str
        ``key=value`` changes to the run's config (e.g. ``data.rate_hz=50``).

    Returns
    -------
    dict
        ``out``, ``windows``, ``metrics`` (or None), ``metrics_file`` (or None) and ``classes``.
    """
    saved = locate(run_dir)
    cfg = load_config(saved.run_dir / CONFIG, overrides)
    check_neural(saved, cfg)
    meta = read_metadata(saved.model_dir)
    target = output_path(out, saved, data)
    dcfg = data_config(cfg.data, data, root)
    ds = match_channels(load_data(dcfg, saved.run_dir), meta["channels"], saved.model_dir)
    check_rate(ds, saved.run_dir)
    model = load_saved_model(cfg, saved, meta, ds.window_length, ds.rate_hz, ds.units)
    probs = predict_probabilities(model, ds.X, cfg.train)
    classes = meta["classes"]
    write_predictions(target, ds, probs, classes, subjects_known(dcfg))
    metrics = score(ds, probs.argmax(1), classes)
    metrics_file = write_metrics(target, metrics, f"{cfg.name} on {data_name(data)}") if metrics else None
    log.info("predict: %d windows of %s -> %s%s", len(ds), data_name(data), target,
             f" (macro-F1 {metrics['macro_f1']:.3f})" if metrics else "")
    return {"out": str(target), "windows": len(ds), "metrics": metrics,
            "metrics_file": str(metrics_file) if metrics_file else None, "classes": list(classes)}
