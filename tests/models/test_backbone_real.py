"""The embedded backbone is the real pretrained SmolLM2-135M, not a random stand-in."""

import pytest
import torch

from fedhar.models import BackboneConfig, load_base
from fedhar.hub import embedded_gguf, resolve_pretrained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lm():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_pretrained("smollm2-135m")  # converts the GGUF once, then reads the cache
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_gguf_ships_in_package():
    assert embedded_gguf("smollm2-135m").stat().st_size > 90e6


def test_architecture_and_generation(lm):
    model, tok = lm
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size) == ("llama", 30, 576)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])


def test_language_likelihood_beats_random_init(lm):
    model, tok = lm
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    random_model = AutoModelForCausalLM.from_config(model.config)
    ids = tok("A person walking up the stairs moves their legs in a regular rhythm.", return_tensors="pt").input_ids
    with torch.no_grad():
        nll_pre = model(ids, labels=ids).loss.item()
        nll_rand = random_model(ids, labels=ids).loss.item()
    assert nll_pre < 0.6 * nll_rand  # pretrained: low perplexity on English; random: ~log(vocab)


def test_fedhar_loader_truncates_and_random_ablation_differs():
    pre = load_base(BackboneConfig(name="smollm2-135m", layers=2))
    rnd = load_base(BackboneConfig(name="smollm2-135m", layers=2, pretrained=False))
    assert len(pre.layers) == len(rnd.layers) == 2 and pre.config.num_hidden_layers == 2
    w_pre = pre.layers[0].self_attn.q_proj.weight
    w_rnd = rnd.layers[0].self_attn.q_proj.weight
    assert w_pre.shape == w_rnd.shape and not torch.allclose(w_pre, w_rnd)
