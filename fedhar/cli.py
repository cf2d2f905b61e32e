"""The ``fedhar`` command line: train, pretrain, simulate, study, data info.

Every user-facing failure is a :class:`~fedhar.exceptions.FedharError`; the CLI prints its
reason as one paragraph and exits non-zero, with no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from fedhar.config import derive, load_config
from fedhar.exceptions import ConfigError, FedharError
from fedhar.federated.deployment.processes import raise_on_sigterm
from fedhar.studies import STUDIES, run_study


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "peft", "urllib3", "matplotlib", "filelock", "alembic", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("flwr").propagate = False  # Flower prints through its own handler
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _seed_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` plus ``--seeds 0,1,2`` as the override ``seeds=[0, 1, 2]``."""
    if getattr(args, "seeds", None) is None:
        return list(args.set)
    try:
        seeds = [int(s) for s in args.seeds.replace(" ", "").split(",") if s]
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. --seeds 0,1,2.") from None
    return [*args.set, f"seeds={seeds}"]


def _print_seeds(results: dict) -> bool:
    """A multi-seed run prints its report (mean ± std, verdicts); True when it was one."""
    if not results.get("multi_seed"):
        return False
    report = Path(results["run_dir"]) / "report.md"
    if report.exists():
        print(report.read_text())
    print(f"run folder: {results['run_dir']}  (seed runs in seed_<s>/)")
    return True


def _cmd_train(args: argparse.Namespace) -> int:
    from fedhar.reporting import resolve_config

    cfg = resolve_config(args.config, _seed_overrides(args), args.out, args.resume)
    results = run_study("train", cfg, args.out, resume=args.resume, force=args.force)
    if _print_seeds(results):
        return 0
    m = results["model"]
    print(f"\nmacro-F1 {results['final']['macro_f1']:.4f}  accuracy {results['final']['accuracy']:.4f}  "
          f"backbone {m['backbone']}  trainable {m['trainable_params']:,}/{m['total_params']:,} params "
          f"({100 * m['trainable_fraction']:.2f}%)  {results['seconds']:.0f}s")
    print(f"run folder: {results['run_dir']}")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    results = run_study("pretrain", load_config(args.config, _seed_overrides(args)), args.out, force=args.force)
    if _print_seeds(results):
        return 0
    print(f"\nmasked-patch MSE: train {results['final']['train_loss']:.4f}  test {results['final']['test_loss']:.4f}  "
          f"({results['windows']} windows, {results['encoder_parameters']:,} encoder params, {results['seconds']:.0f}s)")
    print(f"MAE backbone folder: {results['run_dir']}  (set model.backbone.name to it)")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from fedhar.reporting import resolve_config

    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise ConfigError(f"--resume {args.resume} and --out {args.out} name different run folders; give one.")
    out = args.resume or args.out
    cfg = resolve_config(args.config, _seed_overrides(args), out, bool(args.resume))
    if args.supernodes is not None:
        if args.supernodes < 1:
            raise ConfigError(f"--supernodes must be at least 1; got {args.supernodes}.")
        cfg = derive(cfg, {"federated.num_clients": args.supernodes}, source="--supernodes")
    results = run_study("simulate", cfg, out, resume=bool(args.resume), force=args.force, engine=args.engine)
    _print_seeds(results)
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from fedhar.reporting import resolve_config

    cfg = resolve_config(args.config, _seed_overrides(args), args.out, args.resume)
    results = run_study(args.name, cfg, args.out, resume=args.resume, force=args.force)
    if _print_seeds(results):
        return 0
    report = Path(results["run_dir"]) / "report.md"
    if report.exists():
        print(report.read_text())
    print(f"run folder: {results['run_dir']}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from fedhar.studies.compare import compare

    result = compare(args.runs, baseline=args.baseline, out=args.out, metric=args.metric)
    print(result["markdown"])
    print(f"compare files: {result['out']}/compare.md, compare.csv, compare.json")
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from fedhar.data.sources import describe

    print(describe(args.source, root=args.root))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedhar", description="Federated and continual HAR on frozen LLM backbones.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, func, config: str = "config", nargs: str | None = None) -> argparse.ArgumentParser:
        """The options every run command takes, and the function that runs it."""
        sp.set_defaults(func=func)
        sp.add_argument(config, nargs=nargs, help="experiment YAML file (see configs/)" + (
            "; with --resume, the run folder's saved config.yaml by default" if nargs or config[0] == "-" else ""))
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (repeatable)")
        sp.add_argument("--out", default=None, help="run folder (default: runs/<name>-<timestamp>)")
        sp.add_argument("--force", action="store_true", help="start anew in a run folder that already holds a run")
        sp.add_argument("--seeds", default=None, metavar="S,S,...",
                        help="run once per seed (e.g. 0,1,2), each in <out>/seed_<s>/, and report mean ± std with "
                             "95%% intervals and paired tests (the config key `seeds`)")
        return sp

    tr = common(sub.add_parser("train", help="central training and evaluation"), _cmd_train, nargs="?")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out (with seeds: keep finished seeds)")
    common(sub.add_parser("pretrain", help="self-supervised masked-autoencoder pretraining (an MAE backbone folder)"),
           _cmd_pretrain)

    s = common(sub.add_parser("simulate", help="federated run on Flower (Simulation or Deployment Engine)"), _cmd_simulate,
               nargs="?")
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last finished round")
    s.add_argument("--engine", choices=("simulation", "deployment"), default="simulation")
    s.add_argument("--supernodes", type=int, default=None, help="SuperNodes for --engine deployment")

    st = sub.add_parser("study", help="run a registered study in one run folder (see `fedhar study --help`)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="studies:\n" + "\n".join(
                            f"  {n:<17}{STUDIES.get(n).help}" for n in STUDIES.names()))
    st.add_argument("name", choices=STUDIES.names(), metavar="NAME", help="a registered study (listed below)")
    common(st, _cmd_study, config="--config")
    st.add_argument("--resume", action="store_true", help="continue the study in --out, keeping its finished work")

    cp = sub.add_parser("compare", help="finished run folders of any study in one table (mean ± std, paired p-values)")
    cp.add_argument("runs", nargs="*", metavar="RUN_DIR", help="finished run folders (single- or multi-seed), in order")
    cp.add_argument("--baseline", default=None, metavar="RUN_DIR",
                    help="run to compare every other run against: paired differences on the same (seed, unit) pairs "
                         "with p-values (test and alpha from its config's `stats`); shown once, first")
    cp.add_argument("--out", default=None, metavar="DIR",
                    help="folder for compare.md, compare.csv and compare.json (default: runs/compare-<timestamp>)")
    cp.add_argument("--metric", default=None, metavar="NAME",
                    help="metric to compare (default: the study's own, e.g. macro_f1)")
    cp.set_defaults(func=_cmd_compare)

    d = sub.add_parser("data", help="inspect datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    info = dsub.add_parser("info", help="counts of windows, classes, subjects, channels and rate")
    info.add_argument("source", help="dataset name in the data root (uci_har, wisdm, hhar, hapt, limu_uci) or a path")
    info.add_argument("--root", default=None, help="data root (default: $FEDHAR_DATA_DIR)")
    info.set_defaults(func=_cmd_data_info)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    restore = raise_on_sigterm()  # SIGTERM unwinds, so run folders are marked failed and Ray is shut down
    try:
        return args.func(args)
    except FedharError as exc:
        print("fedhar: error: " + textwrap.fill(exc.reason, width=100, subsequent_indent="  "), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fedhar: interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
