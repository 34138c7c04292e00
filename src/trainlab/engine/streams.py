"""Counter-based random streams: the random numbers a layer draws are a function of
(member seed, step, layer, element), not of a generator's history.

So a member draws the same dropout masks whether it trains alone or stacked with
others, whatever its stack-mates, the chunk size or the order in which layers run.
The engine opens a `stream_scope` around each training forward; a random layer
(`trainlab.layers.Dropout`) asks `layer_key(self)` for its key and draws with
`uniform`. Outside a scope (a user's own loop) layers use torch's global stream.

The hash is MurmurHash3's 32-bit finalizer on int32 tensors: products wrap modulo
2**32 (two's complement, as torch's integer kernels compute them on every device) and
right shifts are made logical by masking, so it gives the same bits on every device and
under ``torch.func.vmap``. `_reference_uniform` is the same hash on Python integers.

Example:
    >>> import torch
    >>> a = uniform(torch.tensor(12345), 4)
    >>> b = uniform(torch.tensor([[12345], [777]]), 4)
    >>> bool(torch.equal(a, b[0])) and bool(((a >= 0) & (a < 1)).all())
    True
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

_M32 = 0xFFFFFFFF
_M62 = (1 << 62) - 1


def mix(*values: int) -> int:
    """A 62-bit key from integers (splitmix64 rounds); the same values always give the same key."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
        state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        state = z ^ (z >> 31)
    return state & _M62


def _signed32(value: int) -> int:
    """The int32 whose bits are those of the unsigned 32-bit `value`."""
    return value - (1 << 32) if value >= (1 << 31) else value


_C1, _C2 = _signed32(0x85EBCA6B), _signed32(0xC2B2AE35)


def _shr(h: Tensor, n: int) -> Tensor:
    """Logical right shift of int32 bits (torch's >> on int32 is arithmetic)."""
    return (h >> n) & ((1 << (32 - n)) - 1)


def _fmix32_(h: Tensor) -> Tensor:
    """MurmurHash3's finalizer, in place on an int32 tensor."""
    h ^= _shr(h, 16)
    h.mul_(_C1)
    h ^= _shr(h, 13)
    h.mul_(_C2)
    h ^= _shr(h, 16)
    return h


def _halves(key: Tensor) -> tuple[Tensor, Tensor]:
    """The low and high 32 bits of int64 keys, as int32 tensors of the same bits."""
    low, high = key & _M32, (key >> 32) & _M32
    sign = 1 << 31
    return ((low ^ sign) - sign).to(torch.int32), ((high ^ sign) - sign).to(torch.int32)


def uniform(key: Tensor, numel: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """`numel` numbers in [0, 1) for each key: shape key.shape[:-1] + (numel,) for keys (..., 1),
    or (numel,) for a 0-d key. Element i of a key is the same whatever else is drawn.

    On the CPU the hash runs in NumPy's uint32 arithmetic (wrapping products, logical
    shifts: about 3x fewer operations than the int32 form); elsewhere, and under vmap, in torch.
    """
    if (key.device.type == "cpu" and dtype in (torch.float32, torch.float64)
            and not torch._C._functorch.is_functorch_wrapped_tensor(key)):
        return _uniform_numpy(key, numel).to(dtype)
    return _uniform_torch(key, numel, dtype=dtype)


def _uniform_torch(key: Tensor, numel: int, *, dtype: torch.dtype) -> Tensor:
    """`uniform` in torch's int32 arithmetic (any device, vmap)."""
    low, high = _halves(key)
    h = torch.arange(numel, device=key.device, dtype=torch.int32) ^ low
    _fmix32_(h)
    h ^= high
    _fmix32_(h)
    h += low
    _fmix32_(h)
    return _shr(h, 8).to(dtype).mul_(1.0 / (1 << 24))


def _fmix32_numpy(h: np.ndarray) -> None:
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)


def _uniform_numpy(key: Tensor, numel: int) -> Tensor:
    """`uniform` on the CPU (float32; the same bits as the torch form)."""
    out = _counts_numpy(key, numel).astype(np.float32)
    out *= np.float32(1.0 / (1 << 24))
    return torch.from_numpy(out)


def _counts_numpy(key: Tensor, numel: int) -> np.ndarray:
    """The 24-bit integers k behind `uniform`'s numbers k / 2**24, as uint32 (NumPy, CPU)."""
    keys = key.numpy().astype(np.uint64)
    low = (keys & np.uint64(_M32)).astype(np.uint32)
    high = (keys >> np.uint64(32)).astype(np.uint32)
    h = np.arange(numel, dtype=np.uint32) ^ low
    _fmix32_numpy(h)
    h ^= high
    _fmix32_numpy(h)
    h += low
    _fmix32_numpy(h)
    h >>= np.uint32(8)
    return h


def _reference_uniform(key: int, index: int) -> float:
    """Element `index` of `uniform` for the 0-d `key`, computed on Python integers."""
    def fmix(h: int) -> int:
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & _M32
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & _M32
        return h ^ (h >> 16)

    low, high = key & _M32, (key >> 32) & _M32
    h = fmix((index ^ low) & _M32)
    h = fmix(h ^ high)
    h = fmix((h + low) & _M32)
    return (h >> 8) / (1 << 24)


@dataclass(frozen=True)
class _Scope:
    seed: int
    step: int
    layers: dict[int, int]  # id(module) -> its position in the model's modules


_SCOPE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("trainlab_stream", default=None)


def layer_positions(model: nn.Module) -> dict[int, int]:
    """Each module's position in `model.modules()`: the layer part of its random key."""
    return {id(module): position for position, module in enumerate(model.modules())}


@contextmanager
def stream_scope(seed: int, step: int, layers: dict[int, int]) -> Iterator[None]:
    """Random layers inside the block draw from (seed, step, their position in `layers`)."""
    token = _SCOPE.set(_Scope(seed, step, layers))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def layer_key(module: nn.Module) -> int | None:
    """The key of `module`'s draws at this step, or None outside a stream scope."""
    scope = _SCOPE.get()
    if scope is None or id(module) not in scope.layers:
        return None
    return key_of(scope.seed, scope.step, scope.layers[id(module)])


def key_of(seed: int, step: int, position: int) -> int:
    """The key of the draws of the layer at `position` at `step` of the member seeded `seed`."""
    return mix(seed, step, position)


def dropout(x: Tensor, rate: float | Tensor, key: Tensor) -> Tensor:
    """Inverted dropout of x (N, ...) with keep mask from `uniform(key, x[0].numel() * N)`.

    `key` is 0-d (one member) or (m, 1) with x (m, N, ...); `rate` a float or (m,) tensor.
    """
    if key.dim() == 0:
        u = uniform(key, x.numel(), dtype=x.dtype).view(x.shape)
        keep = u >= rate
        return x * keep * (1.0 / (1.0 - float(rate)))
    u = uniform(key, x[0].numel(), dtype=x.dtype).view(x.shape)
    rates = rate if isinstance(rate, Tensor) else torch.full((x.shape[0],), float(rate), dtype=x.dtype,
                                                             device=x.device)
    shape = (-1,) + (1,) * (x.dim() - 1)
    scale = (1.0 / (1.0 - rates.double())).to(x.dtype)
    return x * (u >= rates.view(shape)) * scale.view(shape)


def keep_scale(key: Tensor, rate: Tensor, shape: tuple[int, ...], *, dtype: torch.dtype) -> Tensor:
    """The inverted-dropout factors (0 or 1 / (1 - rate)) of `dropout`, for m members: (m, *shape).

    `key` is (m, 1) and `rate` (m,): row i holds exactly the factors `dropout` multiplies
    member i's input by, so ``x * keep_scale(...)`` equals ``dropout(x, ...)`` bit for bit.
    """
    numel = 1
    for size in shape:
        numel *= size
    if (key.device.type == "cpu" and dtype in (torch.float32, torch.float64) and rate.dtype == dtype
            and not torch._C._functorch.is_functorch_wrapped_tensor(key)
            and not torch._C._functorch.is_functorch_wrapped_tensor(rate)):
        # In integers: u = k / 2**24 >= rate exactly when k >= ceil(rate * 2**24) (both sides exact).
        r = rate.detach().double().numpy()
        factor = (1.0 / (1.0 - r)).astype(np.float32 if dtype == torch.float32 else np.float64)
        limit = np.clip(np.ceil(r * float(1 << 24)), 0, 1 << 24).astype(np.uint32)
        counts = _counts_numpy(key, numel).reshape(-1, numel)
        return torch.from_numpy((counts >= limit[:, None]) * factor[:, None]).view(-1, *shape)
    u = uniform(key, numel, dtype=dtype).view(-1, *shape)
    view = (-1,) + (1,) * len(shape)
    scale = (1.0 / (1.0 - rate.double())).to(dtype)
    return (u >= rate.view(view)) * scale.view(view)
