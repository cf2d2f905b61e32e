"""Device, placement and drift simulation over real HAPT streams, for continual HAR.

``devices`` (what a phone or watch does to a signal), ``placements`` (where it is worn, as an
orientation), ``scenario`` (a YAML timeline of phases) and ``generate`` (streams + scenario ->
windowed experiences with one shared channel and class layout).
"""

from fedhar.drift.devices import DEVICES, DeviceProfile, DeviceSignal, apply_device, device_profile
from fedhar.drift.generate import Experience, build_experiences
from fedhar.drift.placements import PLACEMENTS, Placement, placement, rotate, rotation_matrix
from fedhar.drift.scenario import Phase, Scenario, load_scenario

__all__ = [
    "DEVICES", "DeviceProfile", "DeviceSignal", "Experience", "PLACEMENTS", "Phase", "Placement", "Scenario",
    "apply_device", "build_experiences", "device_profile", "load_scenario", "placement", "rotate",
    "rotation_matrix",
]
