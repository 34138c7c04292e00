"""The counter-based random streams behind dropout: the hash, its bits and its distribution."""

import random

import pytest
import torch
from scipy import stats

from trainlab.engine import streams


def _keys(n: int) -> list[int]:
    rng = random.Random(0)
    return [streams.mix(rng.randrange(1 << 40), rng.randrange(10**6), rng.randrange(50)) for _ in range(n)]


@pytest.mark.parametrize("form", ["uniform", "_uniform_torch"])
def test_both_forms_equal_the_hash_on_python_integers(form):
    # `uniform` takes NumPy's uint32 form on the CPU; the torch int32 form serves other devices and vmap.
    keys = _keys(20) + [0, (1 << 62) - 1, 1 << 31, (1 << 32) - 1]
    drawn = getattr(streams, form)(torch.tensor(keys).view(-1, 1), 3000, dtype=torch.float32)
    for row, key in enumerate(keys):
        for index in (0, 1, 2, 1234, 2999):
            assert float(drawn[row, index]) == streams._reference_uniform(key, index)


def test_an_element_does_not_depend_on_how_many_are_drawn_nor_on_the_other_keys():
    keys = _keys(3)
    alone = streams.uniform(torch.tensor(keys[1]), 100)
    together = streams.uniform(torch.tensor(keys).view(-1, 1), 5000)
    assert torch.equal(alone, together[1, :100])


def test_uniform_is_uniform_on_0_1_and_independent_across_keys():
    drawn = streams.uniform(torch.tensor(_keys(2)).view(-1, 1), 50_000, dtype=torch.float64)
    assert float(drawn.min()) >= 0.0 and float(drawn.max()) < 1.0
    assert stats.kstest(drawn[0].numpy(), "uniform").pvalue > 1e-3
    assert abs(stats.pearsonr(drawn[0].numpy(), drawn[1].numpy()).statistic) < 0.02


def test_the_same_bits_under_vmap():
    keys = torch.tensor(_keys(4))
    mapped = torch.func.vmap(lambda key: streams.uniform(key, 64), randomness="different")(keys)
    assert torch.equal(mapped, streams.uniform(keys.view(-1, 1), 64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keep_scale_in_integers_equals_the_float_comparison(dtype):
    # On the CPU the mask is k >= ceil(rate * 2**24) on the hash's integers; it must keep exactly
    # the elements whose number u = k / 2**24 is >= rate, and scale them by 1 / (1 - rate).
    keys = torch.tensor(_keys(7)).view(-1, 1)
    u = streams._uniform_torch(keys, 4000, dtype=dtype).view(-1, 40, 100)
    at = u[4, 0, 17]  # a rate equal to a drawn number keeps it; one just above it drops it
    above = torch.nextafter(u[5, 0, 17], torch.tensor(1.0, dtype=dtype))
    rates = torch.tensor([0.0, 0.5, 0.3, 1 - 2.0 ** -24, float(at), float(above), 0.9], dtype=dtype)
    factors = streams.keep_scale(keys, rates, (40, 100), dtype=dtype)
    expected = (u >= rates.view(-1, 1, 1)) * (1.0 / (1.0 - rates.double())).to(dtype).view(-1, 1, 1)
    assert factors.dtype == dtype and torch.equal(factors, expected)
    assert factors[4, 0, 17] > 0 and factors[5, 0, 17] == 0
