"""Shared fixtures."""
import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread: small ops are much faster on a busy 2-core CPU than with two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def nan_logits_after(monkeypatch):
    """``nan_logits_after(k)``: every training forward after the first ``k`` returns NaN logits
    (``zolib.cl.evaluation.clip_logits`` patched); returns the call counter ``{"n": calls}``."""
    from zolib.cl import evaluation
    real_logits = evaluation.clip_logits
    calls = {"n": 0}

    def install(k: int) -> dict:
        def logits(model, images, text):
            calls["n"] += 1
            out = real_logits(model, images, text)
            return out * float("nan") if calls["n"] > k else out
        monkeypatch.setattr(evaluation, "clip_logits", logits)
        return calls
    return install
