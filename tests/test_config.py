import json

import pytest

from sr_core.config import PRESETS, Config, apply_overrides, preset, set_field
from sr_core.errors import UserError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = preset(name)
    again = Config.from_json(cfg.to_json())
    assert again.to_dict() == cfg.to_dict()


def test_set_field_coerces_types_and_rejects_nonsense():
    cfg = preset("paper")
    set_field(cfg, "train.lr", "1e-3")
    set_field(cfg, "data.image_scales", ["0.5", "1"])
    set_field(cfg, "data.fixed_batch", "false")
    assert cfg.train.lr == 1e-3 and cfg.data.image_scales == (0.5, 1.0) and cfg.data.fixed_batch is False
    with pytest.raises(UserError, match="unknown config field"):
        set_field(cfg, "train.nope", 1)
    with pytest.raises(UserError, match="bad value"):
        set_field(cfg, "train.lr", "fast")
    with pytest.raises(UserError, match="bad value"):
        set_field(cfg, "train.lr", "nan")


def test_overrides_accept_nested_and_dotted_keys_alike():
    cfg = apply_overrides(preset("default"), {"train.lr": 1e-3, "train": {"steps_per_scale": [5]}, "seed": 7, "infer.self_ensemble": True})
    assert cfg.train.lr == 1e-3 and cfg.train.steps_per_scale == (5,) and cfg.seed == 7
    assert cfg.infer.self_ensemble is True
    assert cfg.preset == "default"
    with pytest.raises(UserError, match="unknown config field"):
        apply_overrides(preset("default"), {"infer.nope": 1})
    with pytest.raises(UserError, match="pixel_loss"):
        apply_overrides(preset("default"), {"train.pixel_loss": "l3"})
    with pytest.raises(UserError, match="conflicts"):
        apply_overrides(preset("default"), {"seed": 1, "seed.x": 2})


def test_validate_and_newer_version():
    cfg = preset("paper")
    cfg.model.depth = 3
    with pytest.raises(UserError, match="even"):
        cfg.validate()
    cfg = preset("default")
    cfg.infer.ensemble_steps = -1
    with pytest.raises(UserError, match="ensemble_steps"):
        cfg.validate()
    raw = preset("paper").to_dict()
    raw["config_version"] = 99
    with pytest.raises(UserError, match="newer"):
        Config.from_dict(raw)
    with pytest.raises(UserError, match="unknown preset"):
        preset("best")
    with pytest.raises(UserError, match="JSON"):
        Config.from_json("{not json")
    assert json.loads(preset("smoke").to_json())["preset"] == "smoke"


def test_fast_preset_is_default_with_a_quarter_of_the_pixels_per_step():
    d, f = preset("default").to_dict(), preset("fast").to_dict()
    changed = {(sec, k) for sec, fields in d.items() if isinstance(fields, dict)
               for k in fields if fields[k] != f[sec][k]}
    assert changed == {("data", "batch_size"), ("data", "crop_size")}  # its quality figures are default's
    px = lambda c: c["data"]["batch_size"] * c["data"]["crop_size"] ** 2  # noqa: E731
    assert px(f) * 4 <= px(d)


def test_wide_preset_is_fast_with_a_wider_network_trained_longer_on_l1():
    f, w = preset("fast"), preset("wide")
    assert (w.model.filters, w.train.pixel_loss) == (2 * f.model.filters, "l1")
    assert w.total_steps() == 3 * f.total_steps() and w.train.lr > f.train.lr
    assert w.train.ema_decay > f.train.ema_decay  # a slower average over the longer run
    # ... and it ensembles its last reverse steps (measured for the 16-filter network only).
    assert (f.infer.ensemble_steps, w.infer.ensemble_steps) == (0, 3) and not w.infer.self_ensemble
    # Everything else (pairs, diffusion, sampler, back-projection) is fast's.
    w.infer.ensemble_steps = 0
    same = lambda c: (c.data.crop_size, c.data.batch_size, c.data.image_scales, c.diffusion, c.infer)  # noqa: E731
    assert same(w) == same(f)


def test_default_takes_wides_network_and_training_from_64x64_inputs_up():
    from sr_core.resolve import resolve

    def settings(cfg, *drop):
        return {k: v for k, v in cfg.to_dict().items() if k not in ("resolved", *drop)}

    small, large = resolve("default", input_size=(64, 63)), resolve("default", input_size=(64, 64))
    assert settings(small) == settings(preset("default"))  # 4032 px: under the threshold
    assert large.preset == "default" and large.model.filters == 16 and large.resolved["variant"] == "wide"
    assert "at least 64x64" in large.resolved["decisions"][0] and "under 64x64" in small.resolved["decisions"][0]
    assert settings(large, "preset") == settings(preset("wide"), "preset")  # its figures are wide's
    for name in ("paper", "fast", "wide", "smoke"):  # these do not depend on the input
        assert settings(resolve(name, input_size=(4000, 3000))) == settings(preset(name))


def test_quality_averages_two_architectures_and_trains_again_for_each_step_of_a_longer_plan():
    from sr_core.resolve import Target, describe, resolve

    def settings(cfg):
        return {k: v for k, v in cfg.to_dict().items() if k not in ("resolved", "preset")}

    one = resolve("quality", input_size=(100, 80), target=Target(scale=2))
    two = resolve("quality", input_size=(100, 80), target=Target(scale=4))
    assert one.preset == two.preset == "quality"
    assert settings(one) == settings(preset("quality")) and one.model.arch == "plain"
    assert (one.model.members, one.model.partner) == (3, "wide") and not one.infer.retrain_steps
    assert (two.model.members, two.model.partner) == (1, "wide") and two.resolved["variant"] == "quality-gradual"
    assert two.infer.retrain_steps and two.infer.final_projection
    assert "a plan of 1 step" in one.resolved["decisions"][0]
    assert "(the quality-gradual configuration): a plan of 2 steps" in two.resolved["decisions"][0]
    assert any(d.startswith("gradual: 1 more training") for d in two.resolved["decisions"])
    assert "3 x (8 plain 3x3 layers of 64 channels) and wide's 16 filters averaged" in describe(one)
    # a caller's field that makes the plan longer gets the multi-step configuration too
    steps = resolve("quality", input_size=(144, 144), target=Target(scale=2), overrides={"infer.max_step_factor": 1.42})
    assert steps.resolved["variant"] == "quality-gradual" and steps.infer.retrain_steps
    assert steps.resolved["plan"] == [[204, 204], [288, 288]]
    assert "a plan of 2 steps" in steps.resolved["decisions"][0]
    partner = one.partner_config()  # wide's network and training, this run's pairs, the next seed
    assert partner.model == preset("wide").model and partner.train == preset("wide").train
    assert partner.data == one.data and partner.seed == one.seed + 3
    with pytest.raises(UserError, match="partner must be a preset"):
        resolve("wide", overrides={"model.partner": "nope"})
    with pytest.raises(UserError, match="must be a single network"):
        resolve("wide", overrides={"model.partner": "quality"})
    assert resolve("quality", input_size=(100, 80)).model.arch == "plain"  # no target: the preset itself


def test_a_known_kernel_round_trips_row_by_row_and_bad_ones_are_refused():
    """degradation.known_kernel: given as rows (JSON) or flat, kept flat, read back square;
    an even or non-square count, a zero sum or same-size pairs are one-line errors."""
    cfg = preset("default")
    set_field(cfg, "degradation.known_kernel", [[0, 1, 0], [1, 4, 1], [0, 1, 0]])
    assert cfg.degradation.known_kernel == (0.0, 1.0, 0.0, 1.0, 4.0, 1.0, 0.0, 1.0, 0.0)
    back = Config.from_json(cfg.to_json())
    assert back.degradation.kernel_array().shape == (3, 3) and back.degradation.kernel_array()[1, 1] == 4
    assert preset("default").degradation.kernel_array() is None
    for value, message in [([1, 1, 1, 1], "odd square"), ([0] * 9, "positive sum")]:
        bad = preset("default")
        set_field(bad, "degradation.known_kernel", value)
        with pytest.raises(UserError, match=message):
            bad.validate()
    paper = preset("paper")
    set_field(paper, "degradation.known_kernel", [1.0])
    with pytest.raises(UserError, match="scale-aware pairs"):
        paper.validate()


def test_a_config_file_is_applied_as_the_same_fields_and_a_bad_one_is_a_one_line_error(tmp_path):
    from sr_core.resolve import Target, resolve

    good = tmp_path / "fields.json"
    good.write_text(json.dumps({"infer": {"max_step_factor": 1.42}, "train.lr": 5e-4}))
    cfg = resolve("quality", input_size=(144, 144), target=Target(scale=2), config_file=good)
    assert cfg.resolved["variant"] == "quality-gradual" and cfg.train.lr == 5e-4  # the plan it makes counts
    assert "fields from fields.json" in cfg.resolved["decisions"]
    for text, match in (("{not json", "cannot read config file"), ("[1, 2]", "must hold a JSON object")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(UserError, match=match):
            resolve("default", config_file=bad)
    with pytest.raises(UserError, match="cannot read config file"):
        resolve("default", config_file=tmp_path / "missing.json")
