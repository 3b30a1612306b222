import pickle

import pytest
import torch

from sr_core.runtime.checkpoint import load_checkpoint, save_checkpoint
from sr_core.config import preset
from sr_core.method.pairs import PairSampler
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.errors import UserError
from sr_core.method.train import build_model, load_model, train


def tiny_cfg():
    cfg = preset("smoke")
    cfg.data.image_scales = (0.75, 1.0)
    cfg.data.batch_size = 2
    cfg.data.crop_size = 24
    cfg.train.steps_per_scale = (6,)
    cfg.train.checkpoint_every = 4
    return cfg


def test_training_learns_on_unseen_pseudo_pairs(trained_smoke, sample_rgb):
    """The honest learning test: fresh pairs, full reverse diffusion, against y itself."""
    result, _ = trained_smoke
    cfg = result.config
    rgb = sample_rgb[:64, :64]
    eval_data = type(cfg.data)(**{**cfg.data.__dict__, "crop_size": 0, "batch_size": 4, "fixed_batch": False})
    sampler = PairSampler(rgb, eval_data, cfg.degradation, generator=torch.Generator().manual_seed(999))
    x0, y = sampler.draw()
    d = ResShiftDiffusion(cfg.diffusion)

    def err(model):
        out = d.sample(model.eval(), y, generator=torch.Generator().manual_seed(5))
        return float(((out - x0) ** 2).mean())

    before, after = err(build_model(cfg)), err(result.sampling_model())
    baseline = float(((y - x0) ** 2).mean())
    print(f"learning test MSE: untrained {before:.5f}, trained {after:.5f}, condition y {baseline:.5f}")
    assert after < 0.5 * before
    assert after < 0.8 * baseline


def test_same_seed_same_weights(sample_rgb):
    cfg = tiny_cfg()
    a = train(sample_rgb[:32, :32], cfg, progress=False)
    b = train(sample_rgb[:32, :32], cfg, progress=False)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    cfg.seed = 1
    c = train(sample_rgb[:32, :32], cfg, progress=False)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.model.parameters(), c.model.parameters()))


@pytest.mark.parametrize("fixed", [False, True])
def test_resume_mid_stage_matches_uninterrupted(tmp_path, sample_rgb, fixed):
    cfg = tiny_cfg()
    cfg.data.fixed_batch = fixed
    rgb = sample_rgb[:32, :32]
    full = train(rgb, cfg, out_dir=tmp_path / "full", progress=False)
    mid = tmp_path / "full" / "checkpoints" / "step-000004.pt"  # inside stage 1 (6 steps a stage)
    assert mid.exists()
    resumed = train(rgb, cfg, out_dir=tmp_path / "resumed", resume=mid, progress=False)
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)
    assert resumed.history["loss"] == pytest.approx(full.history["loss"])
    names = sorted(p.name for p in (tmp_path / "full" / "checkpoints").iterdir())
    assert names == ["last.pt", "step-000004.pt", "step-000006.pt", "step-000008.pt", "step-000012.pt"]


def test_resume_refuses_other_image_or_config(tmp_path, sample_rgb):
    cfg = tiny_cfg()
    train(sample_rgb[:32, :32], cfg, out_dir=tmp_path, progress=False)
    last = tmp_path / "checkpoints" / "last.pt"
    with pytest.raises(UserError, match="different image"):
        train(sample_rgb[32:64, :32], cfg, resume=last, progress=False)
    cfg.train.lr = 0.5
    with pytest.raises(UserError, match="different config"):
        train(sample_rgb[:32, :32], cfg, resume=last, progress=False)


def test_checkpoint_round_trip_and_architecture_check(tmp_path, trained_smoke):
    result, out = trained_smoke
    model, cfg = load_model(out / "checkpoints" / "last.pt", use_ema=False)
    for pa, pb in zip(model.parameters(), result.model.parameters()):
        assert torch.equal(pa, pb)
    other = preset("smoke")
    other.model.filters = 16
    with pytest.raises(UserError, match="another model config"):
        load_checkpoint(out / "checkpoints" / "last.pt", expect=other)


def test_corrupt_truncated_and_foreign_checkpoints(tmp_path, trained_smoke):
    _, out = trained_smoke
    good = (out / "checkpoints" / "last.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not an sr_core checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    save_checkpoint(tmp_path / "future.pt", {"model": {}}, preset("smoke"))
    data = torch.load(tmp_path / "future.pt", weights_only=True)
    data["format_version"] = 99
    torch.save(data, tmp_path / "future.pt")
    with pytest.raises(UserError, match="format version 99"):
        load_checkpoint(tmp_path / "future.pt")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": "sr_core-checkpoint", "payload": _Evil()}, fh)
    torch.save({"format": "sr_core-checkpoint", "x": _Evil()}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(UserError, match="refusing|not an sr_core"):
            load_checkpoint(tmp_path / name)
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_nan_loss_stops_with_a_clear_message(sample_rgb):
    cfg = tiny_cfg()
    cfg.train.lr = 1e30  # explode at once
    with pytest.raises(UserError, match="diverged"):
        train(sample_rgb[:32, :32], cfg, progress=False)


def test_resume_inside_a_chunk_of_pairs_matches_uninterrupted(tmp_path, sample_rgb):
    """Pairs made 5 batches per call (as on a GPU): a checkpoint at step 4 is inside a chunk."""
    from sr_core.runtime.accel import Accel

    cfg, rgb, accel = tiny_cfg(), sample_rgb[:32, :32], Accel(pair_chunk=5)
    full = train(rgb, cfg, out_dir=tmp_path / "full", progress=False, accel=accel)
    mid = tmp_path / "full" / "checkpoints" / "step-000004.pt"
    resumed = train(rgb, cfg, out_dir=tmp_path / "resumed", resume=mid, progress=False, accel=accel)
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)
    assert resumed.history["loss"] == pytest.approx(full.history["loss"])
    one_by_one = train(rgb, cfg, progress=False, accel=Accel(pair_chunk=1))
    assert one_by_one.history["loss"] != pytest.approx(full.history["loss"])  # other pairs, as documented


def test_members_are_the_seeds_trainings_averaged(tmp_path, sample_rgb):
    """model.members = 2 trains seed and seed + 1 exactly as two single runs would, samples
    from the mean of their predictions, and its checkpoint loads back as that average."""
    from sr_core.method.model import DenoiserAverage

    rgb = sample_rgb[:32, :32]
    cfg = tiny_cfg()
    singles = []
    for seed in (0, 1):
        cfg.seed = seed
        singles.append(train(rgb, cfg, progress=False).sampling_model().eval())
    cfg.seed, cfg.model.members = 0, 2
    result = train(rgb, cfg, out_dir=tmp_path, progress=False)
    model = result.sampling_model().eval()
    assert isinstance(model, DenoiserAverage) and len(model.members) == 2
    for member, single in zip(model.members, singles):
        assert all(torch.equal(p, q) for p, q in zip(member.parameters(), single.parameters()))
    x, y, t = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16), torch.tensor([2])
    with torch.no_grad():
        mean = (singles[0](x, y, t) + singles[1](x, y, t)) / 2
        assert torch.allclose(model(x, y, t), mean, atol=1e-6)
        loaded, loaded_cfg = load_model(result.checkpoint)
        assert loaded_cfg.model.members == 2 and torch.allclose(loaded(x, y, t), mean, atol=1e-6)
    assert (tmp_path / "members" / "1" / "checkpoints" / "last.pt").exists()
    with pytest.raises(UserError, match="members"):
        train(rgb, cfg, resume=result.checkpoint, progress=False)


def test_a_partner_of_another_architecture_joins_the_average(tmp_path, sample_rgb):
    """model.partner: a plain chain and smoke's ConvNeXt network, the partner trained exactly
    as its own run (its preset's model and training, this run's pairs, the next seed); the
    average loads back from its checkpoint and tiles with the wider receptive field."""
    from sr_core.method.model import DenoiserAverage, NextNet, PlainNet
    from sr_core.runtime.tiling import receptive_radius

    rgb = sample_rgb[:32, :32]
    cfg = tiny_cfg()
    cfg.model.arch, cfg.model.depth, cfg.model.residual, cfg.model.partner = "plain", 2, True, "smoke"
    result = train(rgb, cfg, out_dir=tmp_path, progress=False)
    model = result.sampling_model().eval()
    assert isinstance(model, DenoiserAverage) and [type(m) for m in model.members] == [PlainNet, NextNet]
    partner_cfg = cfg.partner_config()
    assert partner_cfg.seed == 1 and partner_cfg.train.steps_per_scale == preset("smoke").train.steps_per_scale
    alone = train(rgb, partner_cfg, progress=False).sampling_model().eval()
    assert all(torch.equal(p, q) for p, q in zip(model.members[1].parameters(), alone.parameters()))
    assert receptive_radius(model) == preset("smoke").model.receptive_radius() > 2  # the NextNet's, not the chain's
    x, y, t = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16), torch.tensor([2])
    with torch.no_grad():
        mean = (model.members[0](x, y, t) + alone(x, y, t)) / 2
        assert torch.allclose(model(x, y, t), mean, atol=1e-6)
        loaded, loaded_cfg = load_model(result.checkpoint)
        assert loaded_cfg.model.partner == "smoke" and torch.allclose(loaded(x, y, t), mean, atol=1e-6)
