"""Networks (named features, shapes) and DSA (siamese and per-sample)."""

from __future__ import annotations

import pytest
import torch

from ddbench.augment import DSA, NONE, DCAugment, DiMAugment, augment, dc_strategy
from ddbench.plugins import registries

NETS = registries().networks.names()


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes_and_features(name: str, channels: int) -> None:
    net = registries().networks.get(name).build(channels=channels, num_classes=10, image_size=32)
    x = torch.randn(2, channels, 32, 32)
    feats = net.features(x)
    assert feats["logits"].shape == (2, 10)
    assert feats["embedding"].shape == (2, net.embed_dim)
    assert "block2" in feats  # the proposed method's default local layer exists everywhere
    assert torch.allclose(net(x), feats["logits"], atol=1e-5)
    assert torch.allclose(net.embed(x), feats["embedding"], atol=1e-5)
    partial = net.features(x, ["block1"])
    assert list(partial) == ["block1"]


def test_unknown_feature_name() -> None:
    net = registries().networks.get("convnet3").build(channels=1, num_classes=10)
    with pytest.raises(KeyError, match="unknown feature"):
        net.features(torch.randn(1, 1, 32, 32), ["block9"])


def test_seeded_networks_are_identical() -> None:
    spec = registries().networks.get("convnet3")
    torch.manual_seed(0)
    a = spec.build(channels=1, num_classes=10)
    torch.manual_seed(0)
    b = spec.build(channels=1, num_classes=10)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("family", ["color", "crop", "cutout", "flip", "scale", "rotate"])
def test_dsa_families(family: str) -> None:
    dsa = DSA(family)
    x = torch.randn(6, 3, 32, 32, requires_grad=True)
    draw = dsa.sample(6, generator=torch.Generator().manual_seed(1))
    y = dsa.apply(x, draw)
    assert y.shape == x.shape
    y.sum().backward()  # differentiable
    assert x.grad is not None


def test_dsa_siamese_applies_same_parameters() -> None:
    dsa = DSA("crop_scale_rotate")
    x = torch.randn(1, 1, 32, 32)
    for seed in range(5):
        draw = dsa.sample(4, shared=True, generator=torch.Generator().manual_seed(seed))
        a = dsa.apply(x.expand(4, 1, 32, 32), draw)
        b = dsa.apply(x.expand(2, 1, 32, 32), draw)  # a batch of another size, same draw
        assert torch.allclose(a[0], a[3]) and torch.allclose(a[0], b[1])


def test_dsa_per_sample_parameters_differ() -> None:
    dsa = DSA("scale")
    x = torch.randn(1, 1, 32, 32).expand(8, 1, 32, 32)
    y = dsa(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(y[0], y[1])


def test_dsa_rejects_unknown_family() -> None:
    with pytest.raises(ValueError, match="unknown DSA family"):
        DSA("color_zoom")


def test_crop_is_an_integer_shift() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    from ddbench.augment import _translate

    y = _translate(x, torch.tensor([1]), torch.tensor([0]))
    assert torch.equal(y[0, 0, 0], x[0, 0, 1]) and torch.equal(y[0, 0, 3], torch.zeros(4))


def test_augment_is_the_one_entry_point_for_siamese_and_per_sample_draws() -> None:
    """Siamese: one draw, sampled as before (``sample(1, shared=True)``), applied to every batch; per sample:
    ``sample(n)`` then ``apply``, which is also what ``aug(x, g)`` does; None leaves the batches alone."""
    x, y = torch.randn(3, 3, 32, 32), torch.randn(5, 3, 32, 32)
    for aug in (DSA("color_crop_cutout_flip_scale_rotate"), DiMAugment("color_crop_cutout")):
        for seed in range(6):
            g, ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
            a, b = augment(aug, x, y, generator=g, siamese=True)
            draw = aug.sample(1, shared=True, generator=ref, size=32)
            assert torch.equal(a, aug.apply(x, draw)) and torch.equal(b, aug.apply(y, draw))
            assert torch.equal(g.get_state(), ref.get_state())  # the same random numbers were drawn
            (c,) = augment(aug, x, generator=g)
            assert torch.equal(c, aug.apply(x, aug.sample(3, generator=ref, size=32)))
            assert torch.equal(aug(y, g), aug.apply(y, aug.sample(5, generator=ref, size=32)))
    assert augment(None, x, y, generator=None, siamese=True) == (x, y)


def test_no_augmentation_has_one_spelling() -> None:
    assert DiMAugment.unless_none(NONE) is None and DCAugment(NONE)(torch.ones(2, 1, 4, 4)).eq(1).all()
    assert dc_strategy("cifar10", "convnet3") == NONE
    with pytest.raises(ValueError, match="augment=none turns augmentation off"):
        DSA(NONE)
