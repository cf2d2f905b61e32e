"""fedhar data layer: loaders for published HAR layouts, harmonisation, splits and budgets."""

from fedhar.data.build import describe, load_source, load_splits, resolve_source
from fedhar.data.config import DataConfig
from fedhar.data.dataset import WindowDataset, concat, sensor_of
from fedhar.data.harmonize import G, available_sensors, convert_acc_units, harmonize
from fedhar.data.loaders import FORMATS, HaptStreams, SensorStream, detect_format, load, read_hapt_streams
from fedhar.data.loaders.synthetic import make_synthetic
from fedhar.data.splits import (
    apply_channel_stats,
    fit_channel_stats,
    label_budget,
    official_split,
    stratified_split,
    subject_split,
)
from fedhar.data.validate import check_arrays
from fedhar.data.vocab import CANONICAL, MASK_KEY, label_mask, to_canonical, with_label_mask

__all__ = [
    "CANONICAL", "FORMATS", "G", "DataConfig", "HaptStreams", "SensorStream", "WindowDataset",
    "apply_channel_stats", "available_sensors", "check_arrays", "concat", "convert_acc_units", "describe",
    "detect_format", "fit_channel_stats", "harmonize", "label_budget", "label_mask", "MASK_KEY", "with_label_mask", "load", "load_source",
    "load_splits", "make_synthetic", "official_split", "read_hapt_streams", "resolve_source", "sensor_of",
    "stratified_split", "subject_split", "to_canonical",
]
