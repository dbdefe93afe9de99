"""The peers in zolib's harness: ZO-FC in CLIP form, SharpZO and its baselines, infty's ZeroFlow behind
zolib's step."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zolib.cl.profiles import profile_config
from zolib.cl.factory import build_model, load_benchmark, make_optimizer
from zolib.cl.trainer import run_experiment, train_task
from zolib.errors import ZolibError
from zolib.models import tokenizer
from zolib.models.head import head_logits

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = dict(protocol="5-steps", synthetic_train_per_class=8, synthetic_test_per_class=4, max_steps_per_task=3,
             batch_size=16)


def test_zo_fc_resolves_to_its_published_settings():
    cfg = profile_config("smoke", method="zo-fc")
    assert (cfg.classifier, cfg.fo_optimizer, cfg.lr, cfg.zo.zo_lr) == ("head", "sgd", 0.01, 0.01)
    assert (cfg.zo.estimator, cfg.zo.distribution, cfg.zo.rule, cfg.zo.momentum, cfg.zo.clip_norm) == \
        ("two-sided", "rademacher", "aggressive", 0.9, 1.0)
    assert cfg.zo_mask == "vision=111111111111,text=000000000000"


def test_zo_fc_head_starts_as_zero_shot_and_keeps_old_rows_frozen():
    cfg = profile_config("smoke", method="zo-fc", **SMALL)
    device = torch.device("cpu")
    bench = load_benchmark(cfg)
    model = build_model(cfg, device, bench=bench)
    text_cfg = cfg.replace(method="frozen", classifier="text")
    frozen = build_model(text_cfg, device, bench=bench)
    images, _ = bench.test.tensors
    classes = bench.scenario.seen_classes(bench.scenario.num_tasks - 1)
    text = frozen.encode_text(tokenizer(cfg.model_name)(bench.prompts(classes)), normalize=True)
    with torch.no_grad():
        zero_shot = frozen.logit_scale.exp() * frozen.eval().encode_image(images[:8], normalize=True) @ text.T
        torch.testing.assert_close(head_logits(model.eval(), images[:8], classes), zero_shot)
    before = model.head.weight.detach().clone()
    tok = tokenizer(cfg.model_name)
    train_task(cfg, model, bench, 1, tok, device, progress=False)  # task 2
    moved = (model.head.weight - before).abs().sum(1) > 0
    task2 = list(bench.scenario.tasks[1])
    assert moved[task2].all(), "the current task's rows train (FO)"
    assert not moved[[c for c in range(100) if c not in task2]].any(), "every other row is frozen"


def test_zo_fc_trains_its_head_only_for_fc_epochs():
    cfg = profile_config("smoke", method="zo-fc", **{**SMALL, "max_steps_per_task": 0}, epochs=2, fc_epochs=1)
    device = torch.device("cpu")
    bench = load_benchmark(cfg)
    model = build_model(cfg, device, bench=bench)
    seen = []
    real = make_optimizer

    def spy(*args, **kwargs):
        opt = real(*args, **kwargs)
        step = opt.step
        opt.step = lambda closure: seen.append(model.head.weight.detach().clone()) or step(closure)
        return opt
    import zolib.cl.trainer as trainer
    trainer.make_optimizer, saved = spy, trainer.make_optimizer
    try:
        train_task(cfg, model, bench, 0, tokenizer(cfg.model_name), device, progress=False)
    finally:
        trainer.make_optimizer = saved
    per_epoch = len(seen) // 2
    first = [not torch.equal(a, b) for a, b in zip(seen[:per_epoch], seen[1:per_epoch + 1])]
    second = [torch.equal(a, b) for a, b in zip(seen[per_epoch + 1:], seen[per_epoch + 2:])]
    assert any(first) and all(second), "the head moves in epoch 1 and is held fixed in epoch 2"


def test_zo_fc_clips_its_zo_step_to_norm_one(tmp_path):
    from zolib.optim import ZOConfig
    torch.manual_seed(0)
    lin = torch.nn.Linear(50, 1)
    x, y = torch.randn(8, 50), torch.randn(8, 1)
    for clip, bound in ((0.0, None), (1.0, 1.0)):
        net = torch.nn.Linear(50, 1)
        net.load_state_dict(lin.state_dict())
        from zolib.optim.hybrid import HybridOptimizer
        before = torch.cat([p.detach().flatten() for p in net.parameters()])
        opt = HybridOptimizer(net, {("vision", 0): dict(net.named_parameters())}, {("vision", 0): "zo"}, lr=1.0,
                              zo=ZOConfig(rule="aggressive", estimator="two-sided", clip_norm=clip, eps=1.0, zo_lr=1.0))
        opt.step(lambda: 100 * F.mse_loss(net(x), y))
        step = float((torch.cat([p.detach().flatten() for p in net.parameters()]) - before).norm())
        if bound:
            assert step == pytest.approx(bound, rel=1e-5)
        else:
            assert step > 1.0, "without clipping the step is the raw estimate's"


def test_zo_fc_runs_the_class_incremental_protocol(tmp_path):
    r = run_experiment(profile_config("smoke", method="zo-fc", **SMALL), tmp_path / "zofc.json", progress=False)
    assert r["zero_shot"] > 3 and r["movement"][-1]["head"]["fo"] > 0 and r["movement"][-1]["text"] == {"frozen": 0.0}
    assert r["zo_effect"] is not None and 0 <= r["last"] <= 100


def test_the_infty_backend_runs_zeroflow_on_the_same_protocol(tmp_path):
    pytest.importorskip("infty")
    cfg = profile_config("smoke", method="dual", zo_optimizer="zo-sgd", zo_lr=0.01, zo_backend="infty", **SMALL)
    r = run_experiment(cfg, tmp_path / "infty.json", progress=False)
    assert r["movement"][-1]["vision"]["zo"] > 0 and r["config"]["zo_backend"] == "infty"
    with pytest.raises(ZolibError, match="all ZO"):
        run_experiment(cfg.replace(method="vision"), tmp_path / "v.json", progress=False)
    with pytest.raises(ZolibError, match="one eps"):
        run_experiment(cfg.replace(eps_vision=5e-4), tmp_path / "e.json", progress=False)


# ---------------------------------------------------------------- SharpZO and the prompt methods

def test_a_prompt_context_at_zero_is_zero_shot_clip():
    from zolib.cl.evaluation import class_matrix
    cfg = profile_config("smoke", method="sharpzo", prompt_dim=8, **SMALL)
    bench = load_benchmark(cfg)
    model = build_model(cfg, torch.device("cpu"), bench=bench).eval()
    plain = build_model(cfg.replace(method="frozen", classifier="text"), torch.device("cpu"), bench=bench).eval()
    tok = tokenizer(cfg.model_name)
    with torch.no_grad():
        torch.testing.assert_close(class_matrix(model, bench, range(10), tok, "cpu"),
                                   class_matrix(plain, bench, range(10), tok, "cpu"))
        model.prompt.z.add_(1.0)
        assert not torch.allclose(class_matrix(model, bench, range(10), tok, "cpu"),
                                  class_matrix(plain, bench, range(10), tok, "cpu"))


def quadratic(dim=6):
    target = torch.linspace(-1, 1, dim)
    z = torch.nn.Parameter(torch.zeros(dim))
    return z, lambda: ((z - target) ** 2).sum()


def test_sharpzo_evaluates_its_population_at_points_shifted_by_rho_g_over_norm_g():
    from zolib.optim.sharpzo import SharpZO, SharpZOConfig
    z, loss = quadratic()
    cfg = SharpZOConfig(prompt_mode="sharpzo", prompt_dim=6, population=8, rho=0.1, stage1_steps=5)
    opt = SharpZO(z, cfg, seed=0)
    seen, drawn = [], []
    real, ask = opt._loss, opt.es.ask
    opt._loss = lambda closure, x: seen.append(np.asarray(x).copy()) or real(closure, x)
    opt.es.ask = lambda *a, **k: drawn.extend(np.asarray(c).copy() for c in ask(*a, **k)) or drawn
    mean = np.asarray(opt.es.mean).copy()
    result = opt.step(loss)
    g = opt.grad
    assert np.allclose(g, 2 * (mean - np.linspace(-1, 1, 6)), atol=1e-3), "central differences of a quadratic"
    population = seen[2 * 6:]
    assert len(population) == 8 and result.info["stage"] == 1 and result.forwards == 1 + 12 + 8
    shift = 0.1 * g / np.linalg.norm(g)
    assert len(drawn) == 8 and all(np.allclose(p, d + shift) for p, d in zip(population, drawn)), \
        "each CMA-ES draw is evaluated at draw + rho g / |g|"
    plain = SharpZO(quadratic()[0], SharpZOConfig(prompt_mode="cmaes", prompt_dim=6, population=8, rho=0.0), seed=0)
    assert plain.shifted([np.ones(6)], np.ones(6))[0].tolist() == [1.0] * 6, "CMA-ES alone: no shift"


def test_sharpzo_switches_to_sparse_zo_sgd_after_stage_one():
    from zolib.optim.sharpzo import SharpZO, SharpZOConfig
    z, loss = quadratic(10)
    opt = SharpZO(z, SharpZOConfig(prompt_mode="sharpzo", prompt_dim=10, population=6, stage1_steps=3, sparsity=0.5,
                                   mask_every=2), lr=0.05, eps=1e-3, seed=1)
    stages = [opt.step(loss).info["stage"] for _ in range(8)]
    assert stages == [1, 1, 1, 2, 2, 2, 2, 2]
    assert opt.mask.sum() == 5, "half the coordinates are perturbed in stage 2"
    before = z.detach().clone()
    opt.step(loss)
    moved = (z.detach() - before) != 0
    assert moved.any() and not (moved & ~torch.as_tensor(opt.mask, dtype=torch.bool)).any(), "only masked coordinates move"
    assert float(loss()) < float(((torch.zeros(10) - torch.linspace(-1, 1, 10)) ** 2).sum())


@pytest.mark.parametrize("method", ["coop", "prompt-zo-sgd", "prompt-cma-es", "sharpzo"])
def test_prompt_methods_run_the_protocol_and_the_fewshot_setting(tmp_path, method):
    from zolib.cl.fewshot import run_fewshot
    cfg = profile_config("smoke", method=method, prompt_dim=4, population=4, **SMALL)
    r = run_experiment(cfg, tmp_path / "r.json", progress=False)
    assert r["movement"][-1]["vision"] == {"frozen": 0.0} and r["movement"][-1]["prompt"]
    few = run_fewshot(cfg.replace(stage1_steps=1, stage1_fraction=0.0), shots=2, queries=60)
    assert 0 < few["queries"] <= 60 and few["curve"] and 0 <= few["accuracy"] <= 100
