"""Anchored training on the tiny model: the KL term holds the next-token distributions on the anchor
prompts near the reference while the new data is learned; anchors survive a round trip through
the home's references; LoRA targets and length-bucketed batches."""

import random

import numpy as np
import pytest

from clagent.updater import anchors
from clagent.updater.dataset import Tokenized
from clagent.updater.train import Anchor, TrainConfig, _batches, parse_targets, set_threads, train_lora
from tests.conftest import make_tiny_model


def _tensors():
    """The tiny model with sharper next-token distributions (its random ones are nearly flat over
    49,152 tokens: a top-32 reference would hold little of their mass)."""
    spec, model = make_tiny_model(3)
    tensors = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    tensors["model.embed_tokens.weight"] *= 8
    tensors.pop("lm_head.weight", None)  # tied to the embeddings
    return spec, tensors


def _kl_on(spec, tensors, anchor_list):
    """Mean KL(reference || model) on the anchors' positions, the reference being in the anchors."""
    import torch
    from transformers import LlamaForCausalLM

    from clagent.updater.train import _anchor_kl

    model = LlamaForCausalLM(spec.hf_config()).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)
    model.tie_weights()
    with torch.no_grad():
        return float(np.mean([_anchor_kl(model(torch.tensor([a.input_ids])).logits, [a]) for a in anchor_list]))


def test_the_kl_anchor_keeps_general_distributions_while_new_data_is_learned():
    set_threads(1)
    spec, tensors = _tensors()
    rng = np.random.default_rng(0)
    # New data and anchors over the same few tokens: learning the one moves the other, unless held.
    data = [Tokenized([int(x) for x in rng.integers(100, 110, 12)], [-100] * 6 + [int(x) for x in
                                                                               rng.integers(100, 110, 6)])
            for _ in range(4)]
    general = [[int(x) for x in rng.integers(100, 110, 20)] for _ in range(6)]

    def run(weight):
        cfg = TrainConfig(max_steps=30, batch_size=4, learning_rate=5e-3, rank=8, alpha=16, anchor_weight=weight,
                          anchor_batch=3)
        return train_lora(spec, tensors, data, cfg, anchors=[Anchor(g, 9) for g in general])

    free, held = run(0.0), run(5.0)
    assert free.anchor_kl == [] and len(held.anchor_kl) == 30
    reference = held.anchors  # filled in from the model before training
    assert all(a.idx.shape == (10, 32) and np.all(np.diff(a.logp, axis=-1) <= 1e-6) for a in reference)
    kl_free, kl_held = _kl_on(spec, free.tensors, reference), _kl_on(spec, held.tensors, reference)
    assert kl_held < 0.1 * kl_free, (kl_held, kl_free)
    assert held.losses[-1] < 0.5 * held.losses[0]  # and the new data is still learned


def test_anchors_survive_the_home_references(tmp_path):
    a = [Anchor([1, 2, 3, 4, 5], 2, np.arange(6, dtype=np.int32).reshape(2, 3),
                np.log(np.full((2, 3), 0.3, dtype=np.float32)))]
    path = anchors.path_for(tmp_path, 1)
    anchors.save(path, ["Say hi."], "sys", a)
    got = anchors.load(path, ["Say hi."], "sys")
    assert got[0].input_ids == [1, 2, 3, 4, 5] and got[0].start == 2 and np.array_equal(got[0].idx, a[0].idx)
    assert anchors.load(path, ["Say hello."], "sys") is None  # other prompts: not these anchors
    assert anchors.load(path, ["Say hi."], "another system prompt") is None
    assert anchors.load(tmp_path / "missing.npz", ["Say hi."], "sys") is None


def test_lora_targets():
    assert parse_targets("all") == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert parse_targets("mlp") == ["gate_proj", "up_proj", "down_proj"]
    assert parse_targets("attention, down_proj") == ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]
    with pytest.raises(ValueError, match="unknown LoRA target 'lm_head'"):
        parse_targets("lm_head")


def test_batches_group_lengths_and_show_every_example_each_epoch():
    class Item:
        def __init__(self, n):
            self.input_ids = [0] * n

    data = [Item(n) for n in [5] * 8 + [80] * 8]
    gen = _batches(data, 4, random.Random(0))
    epoch = [next(gen) for _ in range(4)]
    assert sorted(id(x) for b in epoch for x in b) == sorted(id(x) for x in data)
    assert all(len({len(x.input_ids) for x in b}) == 1 for b in epoch)  # no short one padded to 80
