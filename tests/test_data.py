"""Toy data sets, splits, k-fold and the DataLoader."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import data

CLASSIFIERS = [
    (data.make_moons, 2), (data.make_circles, 2), (data.make_xor, 2),
    (lambda n, seed=0: data.make_spirals(n, n_classes=4, seed=seed), 4),
    (lambda n, seed=0: data.make_blobs(n, centers=5, n_features=3, seed=seed), 5),
]


@pytest.mark.parametrize("make, n_classes", CLASSIFIERS)
def test_generators_shapes_balance_and_determinism(make, n_classes):
    X, y = make(103)
    assert X.shape[0] == 103 and X.ndim == 2 and X.dtype == np.float32
    assert y.shape == (103,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=n_classes)
    assert len(counts) == n_classes and counts.max() - counts.min() <= 1
    X2, y2 = make(103)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(103, seed=1)
    assert not np.array_equal(X, X3)


def test_generators_follow_the_default_dtype():
    tg.set_default_dtype("float64")
    assert data.make_moons(10)[0].dtype == np.float64
    assert data.make_sine(10)[1].dtype == np.float64


def test_shapes_of_named_data_sets():
    X, y = data.make_sine(50, noise=0.0)
    assert X.shape == (50, 1) and y.shape == (50, 1)
    np.testing.assert_allclose(y, np.sin(X), atol=1e-6)
    X, y = data.make_xor(400, noise=0.0)
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] < 0).astype(np.int64))
    X, y = data.make_circles(400, noise=0.0, factor=0.5)
    radius = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(radius[y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(radius[y == 1], 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="factor"):
        data.make_circles(10, factor=1.5)


def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() == 0 and X.max() == 1 and set(np.unique(y)) == set(range(10))


def test_load_digits_without_sklearn_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'tinygrad-opt\[data\]'"):
        data.load_digits()


def test_split_is_disjoint_covers_and_stratified():
    X, y = data.make_blobs(1000, centers=3, seed=2)
    y[:100] = 3  # a smaller fourth class
    (Xtr, ytr), (Xva, yva), (Xte, yte) = data.train_val_test_split(X, y, seed=0)
    assert (len(Xtr), len(Xva), len(Xte)) == (600, 200, 200)
    train, val, test = data.train_val_test_split(X, y, seed=0, return_indices=True)
    everything = np.concatenate([train, val, test])
    assert len(everything) == len(X) and set(everything) == set(range(len(X)))
    np.testing.assert_array_equal(X[val], Xva)
    for part, fraction in ((ytr, 0.6), (yva, 0.2), (yte, 0.2)):
        expected = np.bincount(y) * fraction
        assert np.all(np.abs(np.bincount(part, minlength=4) - expected) <= 1)
    again = data.train_val_test_split(X, y, seed=0, return_indices=True)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test)))
    other = data.train_val_test_split(X, y, seed=1, return_indices=True)
    assert not np.array_equal(other[0], train)


def test_split_options():
    X, y = data.make_sine(100)
    split = data.train_val_test_split(X, y, val_size=0.1, test_size=30)
    assert [len(part[0]) for part in split] == [60, 10, 30]
    assert split.test[1].shape == (30, 1)
    tr, va, te = data.train_val_test_split(X)  # X alone
    assert len(tr) + len(va) + len(te) == 100 and tr.shape[1] == 1
    tr, va, te = data.train_val_test_split(np.arange(10), shuffle=False, stratify=False)
    np.testing.assert_array_equal(tr, np.arange(6))
    with pytest.raises(ValueError, match="no training samples"):
        data.train_val_test_split(X, y, val_size=0.5, test_size=0.5)
    with pytest.raises(ValueError, match="X has 100 samples but y has 3"):
        data.train_val_test_split(X, y[:3])


@pytest.mark.parametrize("shuffle", [False, True])
def test_kfold_validates_every_sample_once(shuffle):
    X = np.zeros((23, 2))
    seen = []
    folds = list(data.KFold(5, shuffle=shuffle, seed=0).split(X))
    assert len(folds) == 5
    for train, val in folds:
        assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 23
        seen.extend(val)
    assert sorted(seen) == list(range(23))
    assert [len(v) for _, v in folds] == [5, 5, 5, 4, 4]
    with pytest.raises(ValueError, match="n_splits"):
        data.KFold(1)


def test_stratified_kfold_keeps_proportions():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    seen = []
    for train, val in data.StratifiedKFold(5, shuffle=True, seed=3).split(np.zeros(100), y):
        np.testing.assert_array_equal(np.bincount(y[val]), [10, 6, 4])
        seen.extend(val)
    assert sorted(seen) == list(range(100))


def test_dataloader_batches_and_len():
    X, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    loader = data.DataLoader((X, y), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 == len(batches)
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert isinstance(batches[0][0], tg.Tensor) and not batches[0][0].requires_grad
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    dropping = data.DataLoader(data.TensorDataset(X, y), batch_size=4, drop_last=True)
    assert len(dropping) == 2 and [len(b[1]) for b in dropping] == [4, 4]
    with pytest.raises(ValueError, match="no batch"):
        data.DataLoader((X, y), batch_size=11, drop_last=True)


def test_dataloader_shuffle_depends_on_seed_and_epoch_only():
    X, y = np.zeros((50, 1), np.float32), np.arange(50)

    def epoch_order(loader):
        return np.concatenate([b[1].numpy() for b in loader])

    a = data.DataLoader((X, y), batch_size=8, shuffle=True, seed=7)
    first, second = epoch_order(a), epoch_order(a)
    assert sorted(first) == list(range(50)) and not np.array_equal(first, second)
    b = data.DataLoader((X, y), batch_size=8, shuffle=True, seed=7)
    b.set_epoch(1)
    np.testing.assert_array_equal(epoch_order(b), second)
    c = data.DataLoader((X, y), batch_size=8, shuffle=True, seed=8)
    assert not np.array_equal(epoch_order(c), first)
    tg.manual_seed(5)
    d1 = data.DataLoader((X, y), shuffle=True).seed
    tg.manual_seed(5)
    assert data.DataLoader((X, y), shuffle=True).seed == d1


def test_tensor_dataset_takes_tensors_and_lists():
    ds = data.TensorDataset(tg.tensor([[1.0], [2.0], [3.0]]), [0, 1, 1])
    assert len(ds) == 3 and ds.arrays[1].dtype == np.int64
    x, y = ds[np.array([2, 0])]
    assert x.tolist() == [[3.0], [1.0]] and y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="different lengths"):
        data.TensorDataset(np.zeros(3), np.zeros(4))
