"""The ``fedhar`` command line: train, pretrain, simulate, data info.

Every user-facing failure is a :class:`~fedhar.exceptions.FedharError`; the CLI prints its
reason as one paragraph and exits non-zero, with no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from typing import Sequence

from fedhar.exceptions import FedharError


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "peft", "urllib3", "matplotlib", "filelock", "alembic", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("flwr").propagate = False  # Flower prints through its own handler
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _cmd_train(args: argparse.Namespace) -> int:
    from fedhar.config import load_config
    from fedhar.training.central import run_central

    cfg = load_config(args.config, args.set)
    results = run_central(cfg, args.out)
    m = results["model"]
    print(f"\nmacro-F1 {results['final']['macro_f1']:.4f}  accuracy {results['final']['accuracy']:.4f}  "
          f"backbone {m['backbone']}  trainable {m['trainable_params']:,}/{m['total_params']:,} params "
          f"({100 * m['trainable_fraction']:.2f}%)  {results['seconds']:.0f}s")
    print(f"run folder: {results['run_dir']}")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from fedhar.config import load_config
    from fedhar.training.pretrain import run_pretrain

    cfg = load_config(args.config, args.set)
    results = run_pretrain(cfg, args.out)
    print(f"\nmasked-patch MSE: train {results['final']['train_loss']:.4f}  test {results['final']['test_loss']:.4f}  "
          f"({results['windows']} windows, {results['encoder_parameters']:,} encoder params, {results['seconds']:.0f}s)")
    print(f"MAE backbone folder: {results['run_dir']}  (set model.backbone.name to it)")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from fedhar.config import load_config
    from fedhar.federated.run import run_federated

    cfg = load_config(args.config, args.set)
    run_federated(cfg, out=args.out, resume=args.resume, engine=args.engine, supernodes=args.supernodes,
                  config_path=args.config, overrides=args.set)
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from fedhar.data.build import describe

    print(describe(args.source, root=args.root))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedhar", description="Federated and continual HAR on frozen LLM backbones.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("config", help="experiment YAML file (see configs/)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (repeatable)")
        sp.add_argument("--out", default=None, help="run folder (default: runs/<name>-<timestamp>)")

    t = sub.add_parser("train", help="central training and evaluation")
    common(t)
    t.set_defaults(func=_cmd_train)

    pre = sub.add_parser("pretrain", help="self-supervised masked-autoencoder pretraining (an MAE backbone folder)")
    common(pre)
    pre.set_defaults(func=_cmd_pretrain)

    s = sub.add_parser("simulate", help="federated run on Flower (Simulation or Deployment Engine)")
    common(s)
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last finished round")
    s.add_argument("--engine", choices=("simulation", "deployment"), default="simulation")
    s.add_argument("--supernodes", type=int, default=None, help="SuperNodes for --engine deployment")
    s.set_defaults(func=_cmd_simulate)

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
    try:
        return args.func(args)
    except FedharError as exc:
        print("fedhar: error: " + textwrap.fill(exc.reason, width=100, subsequent_indent="  "), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fedhar: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
