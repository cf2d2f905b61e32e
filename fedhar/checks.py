"""Cross-section config checks, in one place: an option that a mode or a study does not support is
refused here, naming both keys, instead of being silently ignored deep inside a runner.

A check is a function of the whole :class:`~fedhar.config.ExperimentConfig` that raises
:class:`~fedhar.exceptions.ConfigError`. Checks registered without a study run on every config
(from :func:`fedhar.config.build_config`); a study's checks run when that study starts.
Every cross-section check is written in this file, below the machinery, so that one file says
what combines with what; it imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from fedhar.exceptions import ConfigError

if TYPE_CHECKING:
    from fedhar.config import ExperimentConfig

Check = Callable[["ExperimentConfig"], None]
_CHECKS: dict[str | None, list[Check]] = {}


def check(study: str | None = None) -> Callable[[Check], Check]:
    """Register a check for every config (``study=None``) or for one study's configs."""

    def add(fn: Check) -> Check:
        _CHECKS.setdefault(study, []).append(fn)
        return fn

    return add


def run_checks(cfg: "ExperimentConfig", study: str | None = None) -> None:
    """Run the checks for every config, then those of ``study`` (if given)."""
    for fn in _CHECKS.get(None, []) + (_CHECKS.get(study, []) if study else []):
        fn(cfg)


# ---------------------------------------------------------------------------- the checks

@check()
def seed_list(cfg: "ExperimentConfig") -> None:
    """``seeds``: distinct, non-negative, at least one; ``seed`` beside it only if it is one of them
    (each seed run takes its own seed, so any other ``seed`` would be silently ignored)."""
    if cfg.seeds is None:
        return
    if not cfg.seeds:
        raise ConfigError("`seeds` is empty: list at least one seed (e.g. [0, 1, 2]), or drop it for one run with `seed`.")
    if len(set(cfg.seeds)) != len(cfg.seeds) or any(s < 0 for s in cfg.seeds):
        raise ConfigError(f"`seeds` must be distinct non-negative integers; got {cfg.seeds}.")
    if cfg.seed != 0 and cfg.seed not in cfg.seeds:
        raise ConfigError(f"`seed` {cfg.seed} is not among `seeds` {cfg.seeds}: with `seeds`, each seed run takes its own "
                          "seed, so drop `seed`.")



@check()
def continual_federated(cfg: "ExperimentConfig") -> None:
    """What a federated continual client cannot run. The adapter library's per-domain adapters
    would replace the global model it receives each round (per-domain FedAvg is not implemented);
    a `federated.task: continual` federation trains one strategy whose clients keep state on disk
    (`fedhar study continual` runs one per strategy and sets both)."""
    if (cfg.continual.mode == "federated" or cfg.federated.task == "continual") and \
            any(s["name"] == "adapters" for s in cfg.continual.strategies):
        raise ConfigError("`continual.strategies`: `adapters` is not supported with `continual.mode: federated`; "
                          "list only naive, replay or ewc (the default list includes adapters).")
    if cfg.federated.task == "continual" and len(cfg.continual.strategies) != 1:
        raise ConfigError(f"`federated.task: continual` trains one strategy; `continual.strategies` lists "
                          f"{len(cfg.continual.strategies)} (`fedhar study continual` runs one federation per strategy).")
    if cfg.federated.task == "continual" and not cfg.continual.federated.state_dir:
        raise ConfigError("`federated.task: continual` needs `continual.federated.state_dir`, where clients keep "
                          "their state between rounds (`fedhar study continual` sets <run>/<strategy>/clients).")


@check("cross_dataset")
def lodo_dataset_clients(cfg: "ExperimentConfig") -> None:
    """Leave-one-dataset-out federates the other datasets' pool with one client per dataset."""
    if cfg.lodo.protocol == "federated" and cfg.federated.partition not in ("dataset", "dataset_subject"):
        raise ConfigError("leave-one-dataset-out needs `federated.partition: dataset` or `dataset_subject`; "
                          f"got {cfg.federated.partition!r}.")


@check("personalization")
def personalization_fedavg(cfg: "ExperimentConfig") -> None:
    """The study's global model is the FedAvg baseline that every personalisation strategy starts from."""
    if cfg.federated.personal_parts:
        raise ConfigError("the personalisation study trains its global model with FedAvg; leave "
                          "`federated.personal_parts` empty (the `fedper` strategy sets it for its own federation).")


@check("sweep")
def sweep_key(cfg: "ExperimentConfig") -> None:
    if not cfg.sweep.key:
        raise ConfigError("`sweep.key` is not set: name the config value to sweep, e.g. model.backbone.lora.r.")


@check("continual")
def continual_scenario(cfg: "ExperimentConfig") -> None:
    spec = cfg.continual.scenario
    if spec is None:
        raise ConfigError("`continual.scenario` is required: a mapping of phases or the path of a scenario YAML file.")
    if isinstance(spec, str):
        from pathlib import Path

        if not Path(spec).exists():
            raise ConfigError(f"`continual.scenario`: scenario file {spec} does not exist.")


@check("smarthome")
def smarthome_homes(cfg: "ExperimentConfig") -> None:
    """The study picks the homes (``data.options.homes``) from ``smarthome.homes``, per home or all at once."""
    if "homes" in cfg.data.options:
        raise ConfigError("`data.options.homes` is set by the smart-home study from `smarthome.homes`; "
                          "name the homes there and drop `data.options.homes`.")
    if cfg.smarthome.mode == "federated" and (cfg.federated.partition != "subject" or cfg.federated.num_clients):
        raise ConfigError("`smarthome.mode: federated` makes each home one client: it needs `federated.partition: subject` "
                          f"and no `federated.num_clients` (got {cfg.federated.partition!r}, {cfg.federated.num_clients}).")


@check("continual")
def continual_federated_clients(cfg: "ExperimentConfig") -> None:
    """Federated continual clients are dealt subjects per phase and the schedule sets the rounds, so the
    ordinary partition and round keys would be silently overridden; refuse them instead."""
    if cfg.continual.mode != "federated":
        return
    default = type(cfg.federated)()
    keys = ("partition", "num_clients", "dirichlet_alpha", "local_split", "local_test_fraction", "rounds",
            "min_available_clients", "min_train_clients")
    changed = [k for k in keys if getattr(cfg.federated, k) != getattr(default, k)]
    if changed:
        raise ConfigError(f"`continual.mode: federated` sets {', '.join(f'`federated.{k}`' for k in changed)} itself "
                          "(clients, subjects and rounds come from `continual.federated` and the scenario's phases); "
                          "drop them from the config.")


@check("simulate")
def simulate_not_continual(cfg: "ExperimentConfig") -> None:
    if cfg.continual.mode == "federated" and cfg.federated.task != "continual":
        raise ConfigError("`continual.mode: federated` is a study, not one federation: run "
                          "`fedhar study continual --config ...` (it runs one federation per strategy).")


@check("llm_couplings")
def couplings_lodo(cfg: "ExperimentConfig") -> None:
    """The couplings study is two federated leave-one-dataset-out runs over ``lodo.datasets``."""
    lodo_dataset_clients(cfg)
    if cfg.lodo.protocol != "federated":
        raise ConfigError("`fedhar study llm_couplings` runs the federated leave-one-dataset-out protocol; set "
                          f"`lodo.protocol: federated` (got {cfg.lodo.protocol!r}).")
    if not cfg.couplings.couplings:
        raise ConfigError("`couplings.couplings` is empty; list the couplings to screen, e.g. "
                          "{label: label-name head, set: {model.head.kind: text}}.")
    names = [d.name for d in cfg.lodo.datasets]
    if cfg.couplings.screen_held_out is not None and cfg.couplings.screen_held_out not in names:
        raise ConfigError(f"`couplings.screen_held_out` is {cfg.couplings.screen_held_out!r}, not one of "
                          f"`lodo.datasets` ({', '.join(names)}).")


@check("cross_dataset")
def mae_protocol_options(cfg: "ExperimentConfig") -> None:
    """Options of the federated protocol that the MAE protocol does not run are refused, not ignored."""
    if cfg.lodo.protocol != "mae":
        return
    if cfg.lodo.text_zero_shot.enabled or cfg.lodo.unseen_classes:
        raise ConfigError("`lodo.text_zero_shot` and `lodo.unseen_classes` belong to the federated protocol (zero-shot "
                          "rows); the MAE protocol (`lodo.protocol: mae`) has no zero-shot evaluation. Drop them.")


@check()
def federated_tiers(cfg: "ExperimentConfig") -> None:
    """Device tiers fit the global model: each tier's LoRA rank and depth are at most the global
    model's (``model.backbone.lora.r``, ``model.backbone.layers``), which clients truncate."""
    tiers = cfg.federated.tier_configs()
    if not tiers:
        return
    b = cfg.model.backbone
    if b.name in ("none", "transformer", "classical") or not b.lora.enabled:
        raise ConfigError(f"`federated.tiers` gives clients LoRA ranks and backbone depths, so it needs an LLM backbone "
                          f"with LoRA (`model.backbone.lora.enabled: true`, no `full_finetune`); got "
                          f"`model.backbone.name: {b.name}` with LoRA {'on' if b.lora.enabled else 'off'}.")
    if b.layers is None:
        raise ConfigError("`federated.tiers` needs `model.backbone.layers` (the global model's depth, which no tier's "
                          "`blocks` may exceed); got null.")
    for i, t in enumerate(tiers):
        if t.blocks > b.layers:
            raise ConfigError(f"`federated.tiers[{i}].blocks` is {t.blocks} (tier `{t.name}`), but the global model has "
                              f"`model.backbone.layers: {b.layers}`; a tier runs at most that many blocks.")
        if t.rank > b.lora.r:
            raise ConfigError(f"`federated.tiers[{i}].rank` is {t.rank} (tier `{t.name}`), but the global model has "
                              f"`model.backbone.lora.r: {b.lora.r}`; a tier trains at most that rank.")
