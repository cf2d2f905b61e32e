"""Run folders, result files, statistics over seeds and plots."""

from fedhar.registry import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "fedhar.reporting.plots": "budget_curves_png confusion_matrix_png curves_png errorbars_png gain_distribution_png "
                              "grouped_bars_png matrices_png timeline_png",
    "fedhar.reporting.run_dir": "RunFolder config_hash resolve_config run_path write_config write_json write_metrics_csv",
    "fedhar.reporting.seeds": "SeedTable aggregate aggregate_markdown",
    "fedhar.reporting.stats": "StatsConfig paired_test summarize verdict",
    "fedhar.reporting.tensorboard": "write_scalars",
})
