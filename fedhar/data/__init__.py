"""fedhar data layer: loaders for published HAR layouts, harmonisation, splits and budgets."""

from fedhar.data.harmonize import G, convert_acc_units, harmonize  # eager: `harmonize` is also a submodule's name,
from fedhar.registry import lazy_exports                              # which a lazy export would lose to the module

__getattr__, __all__ = lazy_exports(__name__, {
    "fedhar.data.sources": "describe load_source load_splits resolve_source",
    "fedhar.data.config": "DataConfig",
    "fedhar.data.dataset": "WindowDataset concat sensor_of",
    "fedhar.data.loaders": "FORMATS HaptStreams SensorStream detect_format load read_hapt_streams",
    "fedhar.data.loaders.synthetic": "make_synthetic",
    "fedhar.data.splits": "apply_channel_stats fit_channel_stats label_budget official_split stratified_split subject_split",
    "fedhar.data.validate": "check_arrays",
    "fedhar.data.vocab": "CANONICAL MASK_KEY label_mask to_canonical with_label_mask",
})
__all__ += ["G", "convert_acc_units", "harmonize"]
