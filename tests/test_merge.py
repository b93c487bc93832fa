"""Merge methods on tiny tensors with hand-checked results, and RECALL on two tiny generated models
whose layers are known to agree or differ."""

import numpy as np
import pytest

from clagent.errors import ClagentError
from clagent.merge import METHODS, merge
from clagent.merge.recall import fuse, kmeans, layer_of, layer_similarities, layer_weights, typical_indices
from clagent.merge.ties import trim, ties_delta


def models(**extra):
    base = {"w": np.array([1.0, 2.0, 3.0, 4.0], np.float32), "b": np.array([[0.0, 1.0]], np.float32)}
    tuned = {"w": np.array([3.0, 2.0, -1.0, 4.5], np.float32), "b": np.array([[1.0, 1.0]], np.float32)}
    return {"base": base, "tuned": tuned, **extra}


def test_registry_lists_every_method():
    assert set(METHODS) >= {"replace", "linear", "task_arithmetic", "ties", "recall"}
    with pytest.raises(ClagentError, match="unknown merge method"):
        merge("average-ish", models())


def test_replace_linear_task_arithmetic():
    m = models()
    assert merge("replace", m).tensors["w"].tolist() == [3.0, 2.0, -1.0, 4.5]
    assert merge("linear", m, weight=0.25).tensors["w"].tolist() == [1.5, 2.0, 2.0, 4.125]
    assert merge("task_arithmetic", m, scale=0.5).tensors["w"].tolist() == [2.0, 2.0, 1.0, 4.25]
    with pytest.raises(ClagentError, match="between 0 and 1"):
        merge("linear", m, weight=1.5)


def test_ties_trims_elects_and_averages():
    assert trim(np.array([0.1, -3.0, 2.0, 0.5]), 0.5).tolist() == [0.0, -3.0, 2.0, 0.0]
    d1, d2, d3 = np.array([2.0, 1.0, -1.0]), np.array([-4.0, 3.0, -2.0]), np.array([1.0, 0.0, 2.0])
    # signs per entry: sum is -1 -> negative wins (only -4 agrees); 4 -> +, mean(1, 3) = 2; -1 -> mean(-1, -2)
    assert ties_delta([d1, d2, d3], 1.0).tolist() == [-4.0, 2.0, -1.5]
    out = merge("ties", models(), density=0.5).tensors["w"]
    assert out.tolist() == [3.0, 2.0, -1.0, 4.0]  # the two largest changes kept, the others dropped


def test_mismatched_models_are_refused_before_merging():
    bad = models()
    bad["tuned"] = {**bad["tuned"], "w": np.zeros(5, np.float32)}
    with pytest.raises(ClagentError, match="shape"):
        merge("linear", bad)
    bad = models()
    del bad["tuned"]["b"]
    with pytest.raises(ClagentError, match="different tensors"):
        merge("replace", bad)


def test_kmeans_and_typical_samples():
    rng = np.random.default_rng(0)
    blobs = [rng.normal(c, 0.05, (10, 2)) for c in ([0, 0], [5, 5], [0, 5])]
    x = np.concatenate(blobs)
    centroids, labels = kmeans(x, 3)
    assert sorted(np.round(centroids).tolist()) == [[0, 0], [0, 5], [5, 5]]
    picked = typical_indices(x, 3)
    assert sorted(i // 10 for i in picked) == [0, 1, 2]  # one sample from each blob


def test_similarity_and_weights_by_hand():
    same = np.ones((2, 3, 4))
    reps = {"tuned": same, "base": same.copy()}
    reps["base"][:, 2, :] += 3.0  # layer 2 differs, layers 0 and 1 agree
    sims = layer_similarities(reps)
    assert sims["tuned"].tolist() == [1.0, 1.0, 1.0]
    assert sims["base"][0] == pytest.approx(1.0) and sims["base"][1] == pytest.approx(1.0)
    assert sims["base"][2] < 0.7
    w = layer_weights(sims, temperature=1.0)
    assert w["tuned"][0] == pytest.approx(0.5) and w["base"][0] == pytest.approx(0.5)
    expected = np.exp(1.0) / (np.exp(1.0) + np.exp(sims["base"][2]))
    assert w["tuned"][2] == pytest.approx(expected)
    assert np.allclose(w["tuned"] + w["base"], 1.0)
    with pytest.raises(ClagentError, match="temperature"):
        layer_weights(sims, 0.0)


def test_layer_assignment_and_fusion():
    assert layer_of("model.embed_tokens.weight", 2) == 0
    assert layer_of("model.layers.0.mlp.up_proj.weight", 2) == 1
    assert layer_of("model.layers.1.self_attn.q_proj.weight", 2) == 2
    assert layer_of("model.norm.weight", 2) == 2 and layer_of("lm_head.weight", 2) == 2
    ms = {"base": {"model.embed_tokens.weight": np.zeros(2, np.float32), "model.layers.1.x": np.zeros(2, np.float32)},
          "tuned": {"model.embed_tokens.weight": np.ones(2, np.float32), "model.layers.1.x": np.ones(2, np.float32)}}
    w = {"base": np.array([0.5, 0.5, 0.1]), "tuned": np.array([0.5, 0.5, 0.9])}
    out = fuse(ms, w, 2)
    assert out["model.embed_tokens.weight"].tolist() == [0.5, 0.5]
    assert np.allclose(out["model.layers.1.x"], 0.9)


def test_recall_on_two_tiny_models_with_known_layer_similarity():
    """The tuned model differs from the base only in its last block: RECALL must average the
    shallow layers and give the tuned model most of the deep one."""
    import torch

    from tests.conftest import make_tiny_model

    spec, base_model = make_tiny_model(seed=0)
    base = {k: v.detach().numpy().copy() for k, v in base_model.state_dict().items()}
    tuned = {k: v.copy() for k, v in base.items()}
    rng = np.random.default_rng(1)
    for k in tuned:
        if k.startswith("model.layers.1.mlp"):
            tuned[k] = tuned[k] + rng.normal(0, 0.3, tuned[k].shape).astype(np.float32)

    def reps(state):
        model = type(base_model)(spec.hf_config()).eval()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        model.tie_weights()
        out = []
        for seq in ([1, 504, 3458, 314], [1, 2780, 1230, 90, 17], [1, 77, 4000]):
            with torch.no_grad():
                hs = model(torch.tensor([seq]), output_hidden_states=True).hidden_states
            out.append(np.stack([h[0].mean(0).numpy() for h in hs]))
        return np.stack(out)  # (samples, layers + 1, hidden)

    r = merge("recall", {"base": base, "tuned": tuned},
              representations={"base": reps(base), "tuned": reps(tuned)}, temperature=0.5)
    w = np.array(r.report["weights"]["tuned"])
    assert w.shape == (3,)
    assert w[0] == pytest.approx(0.5) and w[1] == pytest.approx(0.5)  # identical up to block 0's output
    assert w[2] > 0.6  # the changed block: the tuned model gets more say
    k_deep, k_shallow = "model.layers.1.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight"
    assert np.allclose(r.tensors[k_deep], w[2] * tuned[k_deep] + (1 - w[2]) * base[k_deep], atol=1e-4)  # report rounds
    assert np.allclose(r.tensors[k_shallow], base[k_shallow])
    with pytest.raises(ClagentError, match="representations"):
        merge("recall", {"base": base, "tuned": tuned})
