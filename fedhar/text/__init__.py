"""The event-text path: smart-home sensor events as text for an LLM backbone.

``serialize`` writes windows of events as text with a documented template, ``tokenize`` turns
texts into token-id windows with the backbone's own tokenizer, ``zero_shot`` scores activity
names by the LLM's likelihood, and ``study`` runs the smart-home comparison.
"""

from fedhar.text.serialize import EventTextTemplate, parse_line, serialize_window, serialize_windows
from fedhar.text.tokenize import PAD, ByteTokenizer, encode_texts, load_tokenizer

__all__ = ["EventTextTemplate", "PAD", "ByteTokenizer", "encode_texts", "load_tokenizer", "parse_line",
           "serialize_window", "serialize_windows"]
