"""Run folders, result files and plots."""

from fedhar.reporting.plots import (budget_curves_png, confusion_matrix_png, curves_png, gain_distribution_png,
                                    grouped_bars_png, matrices_png, timeline_png)
from fedhar.reporting.run_dir import (RunFolder, config_hash, resolve_config, run_path, write_config, write_json,
                                      write_metrics_csv)

__all__ = ["budget_curves_png", "confusion_matrix_png", "curves_png", "gain_distribution_png", "grouped_bars_png",
           "matrices_png", "timeline_png", "RunFolder", "config_hash", "resolve_config", "run_path", "write_config", "write_json", "write_metrics_csv"]
