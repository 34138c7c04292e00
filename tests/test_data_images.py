"""Real image and signal data: the IDX reader, Fashion-MNIST, MNIST-1D (pinned), digits as images."""

import gzip
import hashlib
import random

import numpy as np
import pytest
import torch

from trainlab.data_images import (
    FASHION_MNIST_DIR,
    digits_images,
    fashion_mnist,
    mnist1d,
    read_idx,
    register_image_sets,
)
from trainlab.errors import InputError
from trainlab.registry import Registry

HAS_FASHION_MNIST = (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion(tmp_path):
    rng = np.random.default_rng(0)
    for part, n in (("train", 12), ("t10k", 5)):
        write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, size=(n, 28, 28)))
        write_idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def test_the_idx_reader_returns_the_written_array(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)


def test_a_damaged_idx_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(InputError, match="is not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(InputError, match="truncated or damaged"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_from_a_path_in_every_layout(tiny_fashion):
    nhwc = fashion_mnist(path=str(tiny_fashion))
    assert nhwc.x.shape == (12, 28, 28, 1) and nhwc.num_classes == 10
    assert 0.0 <= float(nhwc.x.min()) and float(nhwc.x.max()) <= 1.0
    raw = read_idx(tiny_fashion / "train-images-idx3-ubyte.gz")
    torch.testing.assert_close(nhwc.x[..., 0], torch.from_numpy(raw / np.float32(255)))
    assert fashion_mnist(path=str(tiny_fashion), layout="nchw").x.shape == (12, 1, 28, 28)
    assert fashion_mnist(path=str(tiny_fashion), layout="flat", part="all").x.shape == (17, 784)
    sub = fashion_mnist(path=str(tiny_fashion), subset=5, part="test")
    assert len(sub) == 5 and torch.equal(sub.y, fashion_mnist(path=str(tiny_fashion), subset=5, part="test").y)


def test_absent_fashion_mnist_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINLAB_FASHION_MNIST", raising=False)
    with pytest.raises(InputError, match=r"apt-get install dataset-fashion-mnist.*path ="):
        fashion_mnist(path=str(tmp_path))


def test_the_path_can_come_from_the_environment(tiny_fashion, monkeypatch):
    monkeypatch.setenv("TRAINLAB_FASHION_MNIST", str(tiny_fashion))
    assert len(fashion_mnist()) == 12


@pytest.mark.skipif(not HAS_FASHION_MNIST, reason="Debian's dataset-fashion-mnist is not installed "
                    "(.ci/run installs it)")
def test_the_installed_fashion_mnist_has_its_published_sizes():
    test = fashion_mnist(part="test")
    assert test.x.shape == (10000, 28, 28, 1)
    assert test.y.bincount().tolist() == [1000] * 10  # the test set is balanced
    assert test.y[:5].tolist() == [9, 2, 1, 1, 6]  # the published first test labels


def test_mnist1d_is_generated_the_same_everywhere():
    data = mnist1d(num_samples=1000)
    # Fingerprint of the generated data: a change in the generator or its settings shows here.
    assert hashlib.sha256(data.x.numpy().tobytes()).hexdigest() == \
        "49b6b16c9408d6e62f810b6369bc81c68d9818a33d079cd094eb6e235b679932"
    assert hashlib.sha256(data.y.numpy().tobytes()).hexdigest() == \
        "eb0bae1735893fe592de3ba07b5a2395e1944e3377f5865e130be8dde5a2737c"
    assert data.y.bincount().tolist() == [100] * 10
    assert mnist1d(num_samples=1000, layout="nlc", subset=10).x.shape == (10, 40, 1)


def test_mnist1d_leaves_the_global_random_state_alone():
    np.random.seed(3)
    random.seed(3)
    expected = (np.random.rand(), random.random())
    np.random.seed(3)
    random.seed(3)
    mnist1d(num_samples=20)
    assert (np.random.rand(), random.random()) == expected


def test_digits_as_images():
    data = digits_images()
    assert data.x.shape == (1797, 8, 8, 1) and float(data.x.max()) == 1.0


def test_registering_the_sets_is_idempotent_and_loads_by_name(tiny_fashion):
    registry = Registry("dataset")
    register_image_sets(registry)
    register_image_sets(registry)
    assert {"fashion_mnist", "mnist1d", "digits_images"} <= set(registry.names())
    loaded = registry.build({"name": "fashion_mnist", "path": str(tiny_fashion), "subset": 3})
    assert len(loaded) == 3
