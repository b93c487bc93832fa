"""The gate's new figures as pure functions: retention over earlier memories the parent held,
drift from a compact (top-k) reference of the base version, and the choice of what to rehearse."""

import numpy as np
import pytest

from clagent.updater import gate
from clagent.updater.pipeline import choose_rehearsal


def logprobs(seed, positions=5, vocab=50):
    x = np.random.default_rng(seed).normal(size=(positions, vocab)) * 3
    return gate._log_softmax(x)


def test_retention_counts_only_earlier_memories_the_parent_held():
    checks = [{"memory_id": 1, "ok": True, "earlier": True}, {"memory_id": 2, "ok": False, "earlier": True},
              {"memory_id": 3, "ok": False, "earlier": True}, {"memory_id": 4, "ok": False, "earlier": False}]
    assert gate.retention(checks, {1, 2, 4}) == (0.5, 2)  # 3: parent never held it; 4: new this run
    assert gate.retention(checks, set()) == (None, 0)


def test_drift_from_a_topk_reference_matches_the_full_kl():
    base = [logprobs(0), logprobs(1)]
    new = [logprobs(2), logprobs(3)]
    full = gate.mean_kl(base, new)
    ref = gate.topk_reference(base, k=50)  # all tokens: exact
    assert gate.kl_from_reference(ref, new) == pytest.approx(full, rel=1e-9)
    assert gate.kl_from_reference(gate.topk_reference(base, k=50), base) == pytest.approx(0, abs=1e-9)
    approx = gate.kl_from_reference(gate.topk_reference(base, k=20), new)
    assert 0 < approx and abs(approx - full) < 0.25 * full


def test_reference_survives_a_round_trip(tmp_path):
    base = [logprobs(0), logprobs(1, positions=3)]
    general = [("What is 2+2?", "4"), ("Name a fruit.", "An apple.")]
    gate.save_reference(tmp_path / "ref.npz", general, gate.topk_reference(base, k=8))
    got_general, ref = gate.load_reference(tmp_path / "ref.npz")
    assert got_general == general and [a.shape for a in ref["idx"]] == [(5, 8), (3, 8)]
    assert gate.kl_from_reference(ref, base) == pytest.approx(0, abs=1e-6)
    assert gate.load_reference(tmp_path / "missing.npz") is None


def test_rehearsal_puts_what_the_served_version_forgot_first():
    cands = [{"id": i} for i in range(6)]
    known = {0: True, 1: False, 2: True, 4: False}  # 3 and 5 not probed
    chosen, left = choose_rehearsal(cands, known, 4)
    assert [m["id"] for m in chosen] == [1, 4, 3, 5] and [m["id"] for m in left] == [0, 2]
    assert choose_rehearsal(cands, known, 0) == ([], cands)


def test_new_memories_beyond_the_room_wait_for_the_next_run():
    from clagent.updater.pipeline import fit_new_memories

    mems = [{"id": i, "text": f"The user's sister number {i} lives in Porto.", "kind": "fact", "key": None,
             "question": None, "index_text": "x"} for i in range(10)]
    learned, waiting = fit_new_memories(mems, 0, 39, notes=True)  # 2 x 6 + 1 examples each
    assert [m["id"] for m in learned] == [0, 1, 2] and [m["id"] for m in waiting] == list(range(3, 10))
    assert fit_new_memories(mems, 100, 5, notes=False)[0] == mems[:1]  # at least one is learned
    assert fit_new_memories(mems, 0, 10_000, notes=False) == (mems, [])
