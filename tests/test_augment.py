"""Data techniques: each augmentation, noise and mixing transform against its defining property."""

import math

import pytest
import torch

from trainlab.augment import AUGMENTATIONS, augmentation, batch_transforms
from trainlab.augment.image import (
    RandomAffine,
    RandomErasing,
    RandomFlip,
    RandomPadCrop,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from trainlab.augment.layers import GaussianDropout, GaussianNoise
from trainlab.augment.mix import CutMix, Mixup
from trainlab.augment.noise import GaussianInputNoise, WeightNoise
from trainlab.augment.signal import SignalJitter, SignalScale, SignalShift
from trainlab.errors import InputError
from trainlab.layers import LAYERS, layer_from_config

MIXING = {"mixup", "cutmix"}
SIGNALS = {"signal_shift", "signal_scale", "signal_jitter"}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=6, h=12, w=10, c=3, seed=0):
    return torch.randn(n, h, w, c, generator=gen(seed))


def batch_for(name):
    x = torch.randn(6, 40, generator=gen(1)) if name in SIGNALS else images()
    return x, torch.tensor([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_augmentation_is_deterministic_for_a_seed_and_keeps_shape(name):
    t = augmentation({"name": name}, num_classes=3)
    x, y = batch_for(name)
    a = t(x, y, generator=gen(5))
    b = t(x, y, generator=gen(5))
    c = t(x, y, generator=gen(6))
    assert a[0].shape == x.shape
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)
    assert not torch.equal(a[0], c[0]), "a different seed should give different draws"


@pytest.mark.parametrize("name", sorted(set(AUGMENTATIONS.names()) - MIXING))
def test_every_augmentation_keeps_the_label(name):
    x, y = batch_for(name)
    _, y2 = augmentation(name)(x, y, generator=gen(0))
    assert y2 is y


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("mode", RandomFlip.MODES)
def test_a_flip_applied_twice_is_the_identity(layout, mode):
    x = images() if layout == "nhwc" else images().permute(0, 3, 1, 2).contiguous()
    flip = RandomFlip(mode=mode, layout=layout)
    params = flip.draw(6, 12, 10, gen(3), x.device)
    once = flip.apply(x, params)
    assert not torch.equal(once, x)
    torch.testing.assert_close(flip.apply(once, params), x, rtol=0, atol=0)


def test_a_horizontal_flip_mirrors_the_columns_of_the_drawn_images():
    x = images()
    flip = RandomFlip(mode="horizontal")
    params = flip.draw(6, 12, 10, gen(3), x.device)
    out = flip.apply(x, params)
    for i, flipped in enumerate(params["horizontal"].tolist()):
        torch.testing.assert_close(out[i], x[i].flip(1) if flipped else x[i])


def _centre_of_mass(x):  # x: (N, H, W) non-negative
    rows = torch.arange(x.shape[1], dtype=x.dtype).view(1, -1, 1)
    cols = torch.arange(x.shape[2], dtype=x.dtype).view(1, 1, -1)
    mass = x.sum(dim=(1, 2))
    return (x * cols).sum(dim=(1, 2)) / mass, (x * rows).sum(dim=(1, 2)) / mass


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_a_translation_moves_pixel_mass_by_the_drawn_offset(layout):
    # A blob well inside a 32x32 image, shifted by at most 3 pixels: no mass leaves the image.
    blob = torch.zeros(8, 32, 32)
    blob[:, 12:20, 10:22] = torch.rand(8, 8, 12, generator=gen(0)) + 0.5
    x = blob.unsqueeze(-1) if layout == "nhwc" else blob.unsqueeze(1)
    shift = RandomTranslation(height_factor=0.1, width_factor=0.1, fill_mode="constant", layout=layout)
    params = shift.draw(8, 32, 32, gen(1), x.device)
    out = shift.apply(x, params).reshape(8, 32, 32)
    cx0, cy0 = _centre_of_mass(blob)
    cx1, cy1 = _centre_of_mass(out)
    torch.testing.assert_close(out.sum(dim=(1, 2)), blob.sum(dim=(1, 2)))
    torch.testing.assert_close(cx1 - cx0, params["offset"][:, 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(cy1 - cy0, params["offset"][:, 1], atol=1e-4, rtol=0)
    assert params["offset"].abs().max() > 1.0  # the draws did move things


def test_image_augmentations_give_the_same_result_in_both_layouts():
    x = images()
    for make in (lambda layout: RandomTranslation(layout=layout), lambda layout: RandomRotation(layout=layout),
                 lambda layout: RandomZoom(layout=layout), lambda layout: RandomPadCrop(layout=layout),
                 lambda layout: RandomErasing(probability=1.0, layout=layout)):
        nhwc, _ = make("nhwc")(x, None, generator=gen(2))
        nchw, _ = make("nchw")(x.permute(0, 3, 1, 2), None, generator=gen(2))
        torch.testing.assert_close(nchw.permute(0, 2, 3, 1), nhwc)


def test_the_affine_grid_equals_torchs():
    from trainlab.augment.image import affine_grid

    theta = torch.randn(5, 2, 3, generator=gen(0))
    expected = torch.nn.functional.affine_grid(theta, [5, 1, 7, 9], align_corners=False)
    torch.testing.assert_close(affine_grid(theta, 7, 9), expected)


def test_a_quarter_turn_rotation_equals_rot90_counter_clockwise():
    x = torch.randn(2, 9, 9, 1, generator=gen(0))
    turn = RandomRotation(factor=(0.25, 0.25), fill_mode="constant")
    out, _ = turn(x, None, generator=gen(0))
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(1, 2)), atol=1e-5, rtol=0)  # as np.rot90


def test_zoom_out_by_a_factor_two_shrinks_a_centred_square_to_half_its_side():
    x = torch.zeros(1, 16, 16, 1)
    x[0, 4:12, 4:12] = 1.0
    zoom = RandomZoom(height_factor=(0.99, 0.99), fill_mode="constant", interpolation="nearest")
    out, _ = zoom(x, None, generator=gen(0))
    assert out.sum().item() == pytest.approx(64 / 1.99**2, abs=6)


def test_pad_crop_is_a_whole_pixel_shift_by_the_drawn_corner():
    x = images(n=4, h=8, w=8, c=1)
    crop = RandomPadCrop(padding=2)
    params = crop.draw(4, 8, 8, gen(0), x.device)
    out = crop.apply(x, params)
    padded = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (2, 2, 2, 2)).permute(0, 2, 3, 1)
    for i in range(4):
        top, left = int(params["top"][i]), int(params["left"][i])
        torch.testing.assert_close(out[i], padded[i, top:top + 8, left:left + 8])


def test_consecutive_affine_augmentations_are_fused_into_one_resampling():
    transforms = batch_transforms({"augment": [{"name": "random_translation", "fill_mode": "constant"},
                                               {"name": "random_rotation", "fill_mode": "constant"},
                                               "random_flip"]})
    assert isinstance(transforms[0], RandomAffine) and len(transforms[0].parts) == 2
    assert isinstance(transforms[1], RandomFlip)
    # With no rotation drawn the fused map is exactly the translation.
    shift = RandomTranslation(fill_mode="constant")
    fused = RandomAffine([shift, RandomRotation(factor=0.0, fill_mode="constant")])
    x = images()
    torch.testing.assert_close(fused(x, None, generator=gen(4))[0], shift(x, None, generator=gen(4))[0])


def test_erasing_sets_exactly_the_drawn_box_to_the_value():
    x = images(c=1) + 10.0
    erase = RandomErasing(probability=1.0, value=0.0)
    params = erase.draw(6, 12, 10, gen(1), x.device)
    out = erase.apply(x, params)
    assert ((out == 0).sum(dim=(1, 2, 3)) == params["height"] * params["width"]).all()


def test_brightness_and_contrast_change_mean_and_spread_as_drawn():
    x = images(c=1)
    bright = AUGMENTATIONS.build({"name": "random_brightness", "factor": 0.5})
    params = bright.draw(6, 12, 10, gen(0), x.device)
    shifted = bright.apply(x, params)
    torch.testing.assert_close((shifted - x).mean(dim=(1, 2, 3)), params["delta"])
    contrast = AUGMENTATIONS.build({"name": "random_contrast", "factor": 0.5})
    params = contrast.draw(6, 12, 10, gen(0), x.device)
    out = contrast.apply(x, params)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3)), params["contrast"])


# --------------------------------------------------------------------------- signals


def test_signal_shift_moves_each_signal_by_its_drawn_steps():
    x = torch.arange(1.0, 21.0).repeat(5, 1)
    shift = SignalShift(max_shift=3)
    params = shift.draw(5, gen(2), x.device)
    out = shift.apply(x, params)
    for i, s in enumerate(params["shift"].tolist()):
        expected = torch.zeros(20)
        if s >= 0:
            expected[s:] = x[i, :20 - s]
        else:
            expected[:20 + s] = x[i, -s:]
        torch.testing.assert_close(out[i], expected)


def test_signal_scale_and_jitter_have_the_set_strength():
    x = torch.ones(4000, 40, 2)
    scaled, _ = SignalScale(factor=0.2)(x, None, generator=gen(0))
    ratio = scaled[:, 0, 0]
    assert 0.8 <= ratio.min() and ratio.max() <= 1.2 and (scaled == ratio.view(-1, 1, 1)).all()
    jittered, _ = SignalJitter(stddev=0.3)(x, None, generator=gen(0))
    assert abs((jittered - x).mean().item()) < 0.01
    assert (jittered - x).std().item() == pytest.approx(0.3, rel=0.02)


# --------------------------------------------------------------------------- mixing


def test_a_mixup_output_is_the_convex_combination_of_exactly_two_samples_with_one_lambda():
    n, classes = 8, 4
    x = torch.randn(n, 5, generator=gen(0))
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    onehot = torch.nn.functional.one_hot(y, classes).float()
    xm, ym = Mixup(alpha=1.0, num_classes=classes)(x, y, generator=gen(7))
    for i in range(n):
        fits = []
        for j in range(n):
            # Least squares for xm[i] = a x[i] + b x[j]; an exact fit names the partner.
            basis = torch.stack([x[i], x[j]], dim=1) if j != i else x[i].unsqueeze(1)
            coef = torch.linalg.lstsq(basis, xm[i].unsqueeze(1)).solution.squeeze(1)
            if torch.allclose(basis @ coef, xm[i], atol=1e-5):
                fits.append((j, coef))
        assert len(fits) >= 1
        j, coef = fits[0] if len(fits) == 1 else next(f for f in fits if f[0] == i)
        lam = float(coef.sum()) if j == i else float(coef[0])
        assert float(coef.sum()) == pytest.approx(1.0, abs=1e-4)  # convex: the weights sum to 1
        expected_y = lam * onehot[i] + (1 - lam) * onehot[j] if j != i else onehot[i]
        torch.testing.assert_close(ym[i], expected_y, atol=1e-5, rtol=0)
    torch.testing.assert_close(ym.sum(-1), torch.ones(n))


def test_mixup_uses_one_lambda_from_beta_alpha_alpha():
    lams = []
    for seed in range(400):
        params = Mixup(alpha=0.4).draw(4, gen(seed), torch.device("cpu"))
        lams.append(params["lambda"])
    lams_t = torch.tensor(lams)
    # Beta(0.4, 0.4): mean 1/2, variance 1 / (4 (2 alpha + 1)) = 0.1389.
    assert lams_t.mean().item() == pytest.approx(0.5, abs=0.04)
    assert lams_t.var().item() == pytest.approx(1 / (4 * 1.8), abs=0.02)


def test_cutmix_mixes_the_targets_by_the_pasted_area():
    x = torch.zeros(6, 16, 16, 1)
    x += torch.arange(6.0).view(6, 1, 1, 1)  # image i is filled with the value i
    y = torch.arange(6)
    cut = CutMix(alpha=1.0, num_classes=6)
    params = cut.draw(6, 16, 16, gen(3), x.device)
    xm, ym = cut.apply(x, y, params)
    partner = params["partner"]
    for i in range(6):
        pasted = (xm[i] == float(partner[i])).float().mean() if partner[i] != i else torch.tensor(0.0)
        assert ym[i, i].item() == pytest.approx(1 - pasted.item() if partner[i] != i else 1.0, abs=1e-6)
    torch.testing.assert_close(ym.sum(-1), torch.ones(6))


def test_mixing_integer_labels_needs_the_number_of_classes():
    with pytest.raises(InputError, match="mixup needs num_classes"):
        Mixup(alpha=0.2)(torch.zeros(2, 3), torch.tensor([0, 1]), generator=gen())


def test_recipe_fields_become_transforms_in_order():
    transforms = batch_transforms({"augment": [{"name": "random_crop", "padding": 2}], "input_noise": 0.1,
                                   "mixup": {"alpha": 0.2}, "optimizer": "adam"}, num_classes=10)
    assert [type(t).__name__ for t in transforms] == ["RandomPadCrop", "GaussianInputNoise", "Mixup"]
    assert batch_transforms({}) == []
    with pytest.raises(InputError, match="at most one of mixup and cutmix"):
        batch_transforms({"mixup": 0.2, "cutmix": 1.0}, num_classes=3)


@pytest.mark.parametrize("spec, message", [
    ({"name": "random_translaton"}, r"unknown augmentation 'random_translaton'.*Did you mean 'random_translation'"),
    ({"name": "random_translation", "height_factor": 2}, r"height_factor must be in \[0.0, 1.0\], got 2"),
    ({"name": "random_flip", "mode": "sideways"}, r"mode must be one of"),
    ({"name": "mixup", "alpha": 0}, r"alpha must be > 0"),
    ({"name": "random_crop", "fill_mode": "wrap"}, r"fill_mode must be one of"),
    ({"name": "random_zoom", "heigth_factor": 0.1}, r"has no setting 'heigth_factor'.*height_factor"),
])
def test_bad_settings_are_clear_input_errors(spec, message):
    with pytest.raises(InputError, match=message):
        augmentation(spec)


def test_an_image_augmentation_on_flat_data_says_what_to_do():
    with pytest.raises(InputError, match="expects a batch of images"):
        RandomTranslation()(torch.zeros(4, 64), None, generator=gen())


# --------------------------------------------------------------------------- noise and layers

KERAS_LAYERS = [
    {"type": "RandomFlip"}, {"type": "RandomTranslation", "height_factor": 0.2, "width_factor": 0.2},
    {"type": "RandomRotation", "factor": 0.1}, {"type": "RandomZoom", "height_factor": 0.2},
    {"type": "RandomContrast", "factor": 0.3}, {"type": "RandomBrightness", "factor": 0.3},
    {"type": "GaussianNoise", "stddev": 0.5}, {"type": "GaussianDropout", "rate": 0.3},
]


@pytest.mark.parametrize("config", KERAS_LAYERS, ids=lambda c: c["type"])
def test_every_keras_augmentation_layer_is_identity_in_eval_mode(config):
    layer = layer_from_config(config)
    x = images()
    layer.train()
    assert not torch.equal(layer(x), x)
    layer.eval()
    torch.testing.assert_close(layer(x), x, rtol=0, atol=0)


def test_keras_random_crop_crops_in_training_and_takes_the_largest_centred_window_at_inference():
    layer = layer_from_config({"type": "RandomCrop", "height": 8, "width": 8})
    x = images(h=12, w=12)
    out = layer.train()(x)
    assert out.shape == (6, 8, 8, 3)
    assert any(torch.equal(out, x[:, t:t + 8, s:s + 8]) for t in range(5) for s in range(5))
    # Keras: at inference the largest window with the target's aspect (here all of it), resized.
    resized = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), size=(8, 8), mode="bilinear")
    torch.testing.assert_close(layer.eval()(x), resized.permute(0, 2, 3, 1))
    tall = layer_from_config({"type": "RandomCrop", "height": 12, "width": 6}).eval()
    torch.testing.assert_close(tall(x), x[:, :, 3:9])


@pytest.mark.parametrize("make", [lambda: GaussianNoise(0.3), lambda: GaussianInputNoise(stddev=0.3)])
def test_gaussian_noise_has_zero_mean_effect_and_the_set_variance(make):
    torch.manual_seed(0)
    x = torch.full((200, 100), 2.0)
    noise = make()
    out = noise(x, None, generator=gen(0))[0] if isinstance(noise, GaussianInputNoise) else noise.train()(x)
    effect = out - x
    # n = 20000 draws: the standard error of the mean is 0.3 / sqrt(20000) = 0.002.
    assert abs(effect.mean().item()) < 0.01
    assert effect.std().item() == pytest.approx(0.3, rel=0.02)


def test_gaussian_dropout_has_mean_one_and_dropouts_variance_and_is_off_in_eval():
    torch.manual_seed(0)  # the layer draws from torch's global stream, as Keras layers draw from theirs
    rate = 0.3
    layer = GaussianDropout(rate)
    x = torch.full((200, 100), 3.0)
    factor = layer.train()(x) / x
    # n = 20000 draws of std sqrt(0.3 / 0.7) = 0.65: the mean's standard error is 0.0046; 4 of them.
    assert abs(factor.mean().item() - 1.0) < 0.02
    assert factor.var().item() == pytest.approx(rate / (1 - rate), rel=0.04)
    torch.testing.assert_close(layer.eval()(x), x, rtol=0, atol=0)


def test_weight_noise_perturbs_the_training_forward_and_never_stores_the_noise():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(50, 40), torch.nn.ReLU(), torch.nn.Linear(40, 1))
    clean = {k: v.clone() for k, v in model.state_dict().items()}
    noise = WeightNoise(stddev=0.05)
    noise.set_model(model)
    noise.on_train_begin()
    seen = model[0].weight - model[0].parametrizations.weight.original
    assert abs(seen.mean().item()) < 0.005 and seen.std().item() == pytest.approx(0.05, rel=0.05)
    model.eval()
    torch.testing.assert_close(model[0].weight, clean["0.weight"], rtol=0, atol=0)
    model.train()
    assert sorted(model.state_dict()) == sorted(clean)  # plain keys while training, too
    model.load_state_dict(clean)
    out = model(torch.randn(8, 50)).sum()
    out.backward()
    assert model[0].parametrizations.weight.original.grad is not None  # the gradient reaches the clean W
    noise.on_train_end()
    assert sorted(model.state_dict()) == sorted(clean)
    for key, value in clean.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert model[0].bias is not None and not hasattr(model[0], "parametrizations")


def test_keras_layers_are_in_the_layers_registry():
    for name in ("RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomCrop",
                 "RandomContrast", "GaussianNoise", "GaussianDropout"):
        assert name in LAYERS
    assert math.isclose(GaussianDropout(0.5).rate, 0.5)


@pytest.mark.parametrize("config", KERAS_LAYERS, ids=lambda c: c["type"])
def test_every_augmentation_layer_runs_under_vmap_with_its_own_draws_per_member(config):
    # Stacked members run one model under torch.func.vmap(randomness="different").
    layer = layer_from_config(config).train()
    x = images(n=4).expand(3, 4, 12, 10, 3)
    out = torch.func.vmap(layer, randomness="different")(x)
    assert out.shape == x.shape and not torch.equal(out[0], out[1])
