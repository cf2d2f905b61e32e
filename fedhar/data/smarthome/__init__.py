"""Smart-home ambient-sensor datasets: a common event-stream type, parsers, windows, splits, features,
and their serialisation as text with the backbone's tokenizer."""

from fedhar.data.smarthome.events import HomeRecording, SensorInfo, recording_from_intervals
from fedhar.data.smarthome.features import count_features
from fedhar.data.smarthome.serialize import EventTextTemplate, parse_line, serialize_window, serialize_windows
from fedhar.data.smarthome.tokenize import PAD, ByteTokenizer, encode_texts, load_tokenizer
from fedhar.data.smarthome.parsers import HOMES, read_home, read_kasteren2008, read_kasteren2010, read_ordonez
from fedhar.data.smarthome.splits import chronological_split, cross_home_split, day_of
from fedhar.data.smarthome.vocab import HOME_ACTIVITIES, home_label, normalize_label
from fedhar.data.smarthome.windows import EventWindows, event_windows

__all__ = [
    "EventTextTemplate", "PAD", "ByteTokenizer", "encode_texts", "load_tokenizer", "parse_line", "serialize_window",
    "serialize_windows",
    "HOMES", "HOME_ACTIVITIES", "EventWindows", "HomeRecording", "SensorInfo", "chronological_split",
    "count_features", "cross_home_split", "day_of", "event_windows", "home_label", "normalize_label", "read_home",
    "read_kasteren2008", "read_kasteren2010", "read_ordonez", "recording_from_intervals",
]
