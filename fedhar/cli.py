"""The ``fedhar`` command line: train, pretrain, simulate, study, predict, export, compare, data, config.

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

from fedhar import __version__
from fedhar.config import config_to_dict, load_config
from fedhar.exceptions import ConfigError, FedharError
from fedhar.federated.deployment.processes import raise_on_sigterm
from fedhar.quiet import install_known_filters
from fedhar.studies import STUDIES, run_study

LOGGERS = ("tensorboard",)
"""Values of ``--log`` (the config key ``loggers``)."""


def _flower_warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "peft", "urllib3", "matplotlib", "filelock", "alembic", "datasets", "onnx_ir",
                  "onnxscript", "torch.onnx", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    flwr = logging.getLogger("flwr")
    flwr.propagate = False  # Flower prints through its own handler
    if not verbose:  # fedhar logs each round itself; Flower's banner and summaries repeat it (-v shows them)
        flwr.addFilter(_flower_warnings_only)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _seed_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` plus ``--seeds 0,1,2`` as ``seeds=[0, 1, 2]`` and ``--log tensorboard`` as
    ``loggers=[tensorboard]``, so the options land in the saved config like any other key."""
    overrides = list(args.set)
    if getattr(args, "seeds", None) is not None:
        try:
            seeds = [int(s) for s in args.seeds.replace(" ", "").split(",") if s]
        except ValueError:
            raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. --seeds 0,1,2.") from None
        overrides.append(f"seeds={seeds}")
    if getattr(args, "log", None):
        overrides.append(f"loggers=[{', '.join(dict.fromkeys(args.log))}]")
    return overrides


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
    options: dict = {"engine": args.engine}
    if args.supernodes is not None:  # the simulate study re-partitions for N nodes and records it
        if args.supernodes < 1:
            raise ConfigError(f"--supernodes must be at least 1; got {args.supernodes}.")
        options["supernodes"] = args.supernodes
    results = run_study("simulate", cfg, out, resume=bool(args.resume), force=args.force, **options)
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


def _cmd_predict(args: argparse.Namespace) -> int:
    from fedhar.training.predict import predict_run

    result = predict_run(args.run_dir, args.data, out=args.out, root=args.root, overrides=list(args.set))
    print(f"predicted {result['windows']:,} windows -> {result['out']}")
    if metrics := result.get("metrics"):
        where = f"  ({result['metrics_file']})" if result.get("metrics_file") else ""
        print(f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}{where}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from fedhar.export.run import ExportOptions, export_run

    opts = ExportOptions(format=args.format, quantize=args.quantize, client=args.client, personal=args.personal,
                         min_agreement=args.min_agreement, windows=args.windows, bench=args.bench,
                         bench_windows=args.bench_windows)
    r = export_run(args.run_dir, args.out, opts, overrides=list(args.set))
    p = r["parity"]
    print(f"exported {r['source']} -> {r['file']} ({r['file_bytes'] / 1e6:.1f} MB, {r['format']}, quantize {r['quantize']})")
    print(f"parity on {p['windows']:,} test windows: argmax agreement {100 * p['agreement']:.2f}% "
          f"(required {100 * p['min_agreement']:.2f}%), max |logit diff| {p['max_abs_logit_diff']:.2e}, "
          f"macro-F1 {p['macro_f1']:.4f} (PyTorch {p['macro_f1_torch']:.4f})")
    if b := r.get("bench"):
        lat, mem = b["latency"], b["memory"]
        print(f"one thread: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms per window over {lat['windows']} "
              f"windows; {b['throughput']['windows_per_s']:.1f} windows/s at batch {b['throughput']['batch']}; "
              f"peak memory {mem['model_peak_mb']:.0f} MB above the runtime")
    print(f"report: {r['file']}.json")
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from fedhar.data.sources import describe

    print(describe(args.source, root=args.root))
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from fedhar.data.sources import ENV_ROOT, data_root, list_sources

    base = data_root(args.root)
    print(f"data folder: {base}" if base is not None else
          f"data folder: not set (pass --root DIR or set {ENV_ROOT}); known names cannot be found without one")
    rows = list_sources(args.root)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"  {r['name']:<{width}}  {'found  ' if r['found'] else 'missing'}  {r['reads']}")
        if r["found"] and r["name"] != "synthetic":
            print(f"  {'':<{width}}           {r['path']}")
    print(textwrap.fill("Any other path works too: a *.npz file (X (N, C, T), y, optional subject, channels, units, "
                        "classes, rate_hz) or a file or folder in one of these layouts. `fedhar data info NAME` "
                        "shows what a source holds.", width=100))
    return 0


def _cmd_config_keys(args: argparse.Namespace) -> int:
    from fedhar.configdoc import describe_keys

    print(describe_keys(args.section))
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    import yaml

    cfg = load_config(args.config, _seed_overrides(args))
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True, width=100), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedhar", description="Federated and continual HAR on frozen LLM backbones.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"fedhar {__version__}")
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
        sp.add_argument("--log", action="append", choices=LOGGERS, default=None,
                        help="extra metric logger beside metrics.csv (repeatable; the config key `loggers`)")
        return sp

    tr = common(sub.add_parser("train", help="central training and evaluation"), _cmd_train, nargs="?")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out (with seeds: keep finished seeds)")
    common(sub.add_parser("pretrain", help="self-supervised masked-autoencoder pretraining (an MAE backbone folder)"),
           _cmd_pretrain)

    s = common(sub.add_parser("simulate", help="federated run on Flower (Simulation or Deployment Engine)"), _cmd_simulate,
               nargs="?")
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last finished round")
    s.add_argument("--engine", choices=("simulation", "deployment"), default="simulation")
    s.add_argument("--supernodes", type=int, default=None,
                   help="SuperNodes (one client each) for --engine deployment; the study re-partitions for N")

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

    pr = sub.add_parser("predict", help="predict the activities of new windows with a trained run's model")
    pr.add_argument("run_dir", metavar="RUN_DIR", help="a finished `fedhar train` run folder")
    pr.add_argument("data", metavar="DATA", help="a known source name (uci_har, wisdm, ...) or a path to an .npz file")
    pr.add_argument("--out", default=None, metavar="FILE", help="predictions file (default: inside RUN_DIR)")
    pr.add_argument("--root", default=None, metavar="DIR", help="data root (default: $FEDHAR_DATA_DIR)")
    pr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a value of the run's saved config, e.g. --set data.max_windows=500 (repeatable)")
    pr.set_defaults(func=_cmd_predict)

    ex = sub.add_parser("export", help="a trained run's model as one ONNX or ExecuTorch file, checked against PyTorch")
    ex.add_argument("run_dir", metavar="RUN_DIR", help="a finished central or federated run folder (or its model/ "
                    "folder, or a client's personal state file)")
    ex.add_argument("--format", choices=("onnx", "executorch"), default="onnx", help="file format (default: onnx)")
    ex.add_argument("--quantize", choices=("none", "int8", "int4"), default="none",
                    help="weight quantisation (default: none, float32)")
    ex.add_argument("--client", type=int, default=None, metavar="N",
                    help="export client N's personalised model (RUN_DIR/clients/client_NNNN) instead of the global one")
    ex.add_argument("--personal", default=None, metavar="NAME",
                    help="with --client: which of the client's state files (e.g. finetune, fedper) when it has several")
    ex.add_argument("--out", required=True, metavar="FILE", help="the exported file (.onnx or .pte); the parity "
                    "report goes beside it as FILE.json")
    ex.add_argument("--min-agreement", type=float, default=None, metavar="SHARE",
                    help="argmax agreement with PyTorch the export must reach (default 0.995 for float32, 0.99 int8, "
                         "0.95 int4)")
    ex.add_argument("--windows", type=int, default=None, metavar="N",
                    help="check parity on the first N test windows only (default: all)")
    ex.add_argument("--bench", action="store_true",
                    help="also measure file size, peak memory, one-thread latency (p50/p95) and batch-32 throughput")
    ex.add_argument("--bench-windows", type=int, default=200, metavar="N",
                    help="single windows timed for the latency percentiles (default and minimum 200)")
    ex.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a value of the run's saved config (repeatable)")
    ex.set_defaults(func=_cmd_export)

    d = sub.add_parser("data", help="inspect datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    info = dsub.add_parser("info", help="counts of windows, classes, subjects, channels and rate")
    info.add_argument("source", help="dataset name in the data root (uci_har, wisdm, hhar, hapt, limu_uci) or a path")
    info.add_argument("--root", default=None, help="data root (default: $FEDHAR_DATA_DIR)")
    info.set_defaults(func=_cmd_data_info)
    ls = dsub.add_parser("list", help="every known dataset name, the format it reads, and whether it is found")
    ls.add_argument("--root", default=None, help="data root (default: $FEDHAR_DATA_DIR)")
    ls.set_defaults(func=_cmd_data_list)

    c = sub.add_parser("config", help="every config key, or a config resolved with all its defaults")
    csub = c.add_subparsers(dest="config_command", required=True)
    keys = csub.add_parser("keys", help="every config key with its type, default, choices and help")
    keys.add_argument("section", nargs="?", default=None, metavar="SECTION",
                      help="only this section (e.g. train, model.backbone) or key (e.g. train.lr)")
    keys.set_defaults(func=_cmd_config_keys)
    show = csub.add_parser("show", help="print a config as validated YAML, every default filled in")
    show.add_argument("config", help="experiment YAML file (see configs/)")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    show.add_argument("--seeds", default=None, metavar="S,S,...", help="as for train: the config key `seeds`")
    show.set_defaults(func=_cmd_config_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    install_known_filters()  # before any dependency is imported, and inherited by Ray workers
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it once, at import
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
    except BrokenPipeError:  # `fedhar config keys | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        restore()
        logging.getLogger("flwr").removeFilter(_flower_warnings_only)  # main() may run again in-process (tests)


if __name__ == "__main__":
    sys.exit(main())
