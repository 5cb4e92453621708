"""Toy data sets, splits, k-fold cross validation, and a DataLoader.

Every generator is seeded and needs no download. They return NumPy arrays
``(X, y)``: ``X`` of shape ``(n_samples, n_features)`` in the default float
dtype (float32 unless ``tg.set_default_dtype`` changed it), ``y`` int64 class
labels of shape ``(n_samples,)`` for classification, or a float column of
shape ``(n_samples, 1)`` for regression (the shape of a one-output model, so
``mse_loss(model(X), y)`` never broadcasts by accident). Arrays rather than
Tensors because splits and loaders index them; ``TensorDataset``,
``DataLoader`` and ``train.fit`` accept either.

Classes are balanced: ``n_samples`` is shared out as evenly as possible (the
first ``n_samples % n_classes`` classes get one more sample).

Epoch and iteration, as in the lecture: one *iteration* is one mini-batch and
one optimizer step; one *epoch* is one pass over the training set, so an epoch
has ``len(loader)`` iterations.

    X, y = make_moons(500, noise=0.1, seed=0)
    train, val, test = train_val_test_split(X, y)          # 60/20/20, stratified
    loader = DataLoader(train, batch_size=32, shuffle=True, seed=0)
    for X_batch, y_batch in loader:                        # Tensors
        ...
"""

import math
from collections import namedtuple

import numpy as np

from . import backend
from .creation import generator
from .tensor import Tensor

__all__ = [
    "DataLoader",
    "KFold",
    "Split",
    "StratifiedKFold",
    "TensorDataset",
    "first_non_finite",
    "load_digits",
    "make_blobs",
    "make_circles",
    "make_moons",
    "make_sine",
    "make_spirals",
    "make_xor",
    "train_val_test_split",
]


# -- generators ---------------------------------------------------------------------------------


def _rng(seed):
    return np.random.default_rng(seed)


def _counts(n_samples, n_classes):
    """Class sizes, as even as possible."""
    if n_samples < n_classes:
        raise ValueError(f"n_samples={n_samples} is fewer than the {n_classes} classes; "
                         f"ask for at least {n_classes} samples.")
    base, extra = divmod(n_samples, n_classes)
    return [base + (c < extra) for c in range(n_classes)]


def _finish(rng, X, y, noise, shuffle):
    """Add Gaussian noise, shuffle, and cast: the last step of every classifier generator."""
    if noise:
        X = X + rng.normal(scale=noise, size=X.shape)
    if shuffle:
        order = rng.permutation(len(y))
        X, y = X[order], y[order]
    return X.astype(backend.get_default_dtype()), y.astype(np.int64)


def make_moons(n_samples=200, noise=0.1, seed=0, shuffle=True):
    """Two interleaving half circles (scikit-learn's moons): 2 features, 2 classes.

    Class 0 is the upper moon (unit half circle), class 1 the lower one,
    shifted by (1, -0.5); ``noise`` is the standard deviation of Gaussian
    noise added to every coordinate.
    """
    rng = _rng(seed)
    n_out, n_in = _counts(n_samples, 2)
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)])
    y = np.repeat([0, 1], [n_out, n_in])
    return _finish(rng, X, y, noise, shuffle)


def make_circles(n_samples=200, noise=0.05, factor=0.5, seed=0, shuffle=True):
    """A small circle (class 1, radius ``factor``) inside a unit circle (class 0)."""
    if not 0 < factor < 1:
        raise ValueError(f"make_circles: factor={factor} must lie strictly between 0 and 1 "
                         "(the inner circle's radius relative to the outer one).")
    rng = _rng(seed)
    n_out, n_in = _counts(n_samples, 2)
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        factor * np.stack([np.cos(t_in), np.sin(t_in)], 1)])
    y = np.repeat([0, 1], [n_out, n_in])
    return _finish(rng, X, y, noise, shuffle)


def make_spirals(n_samples=300, n_classes=3, noise=0.2, turns=1.0, seed=0, shuffle=True):
    """``n_classes`` interleaved spiral arms (the CS231n spiral), 2 features.

    Arm k has radius r = 0..1 and angle 2π·turns·r + 2πk/n_classes; ``noise``
    is the standard deviation of Gaussian noise on the angle (in radians).
    """
    rng = _rng(seed)
    parts, labels = [], []
    for k, n in enumerate(_counts(n_samples, n_classes)):
        r = np.linspace(0.0, 1.0, n)
        angle = 2 * np.pi * (turns * r + k / n_classes) + rng.normal(scale=noise, size=n)
        parts.append(np.stack([r * np.sin(angle), r * np.cos(angle)], 1))
        labels.append(np.full(n, k))
    return _finish(rng, np.concatenate(parts), np.concatenate(labels), 0, shuffle)


def make_xor(n_samples=200, noise=0.1, seed=0, shuffle=True):
    """The XOR problem: points in [-1, 1]², class 1 where x₀·x₁ < 0 (opposite quadrants).

    Each class gets half the points, spread uniformly over its two quadrants
    (kept at least 0.1 from the axes), then Gaussian ``noise`` is added.
    """
    rng = _rng(seed)
    parts = []
    for label, n in enumerate(_counts(n_samples, 2)):
        magnitude = rng.uniform(0.1, 1.0, size=(n, 2))
        quadrant = rng.integers(0, 2, size=n) * 2 - 1            # +1 or -1 for x0
        signs = np.stack([quadrant, quadrant * (1 - 2 * label)], 1)  # class 1 flips x1
        parts.append(magnitude * signs)
    y = np.repeat([0, 1], _counts(n_samples, 2))
    return _finish(rng, np.concatenate(parts), y, noise, shuffle)


def make_blobs(n_samples=300, centers=3, n_features=2, cluster_std=1.0, center_box=(-10.0, 10.0),
               seed=0, shuffle=True):
    """Isotropic Gaussian blobs: ``centers`` is a count (drawn uniformly in ``center_box``)
    or an array of shape (n_classes, n_features)."""
    rng = _rng(seed)
    if np.ndim(centers) == 0:
        centers = rng.uniform(*center_box, size=(int(centers), n_features))
    centers = np.asarray(centers, dtype=np.float64)
    parts, labels = [], []
    for k, n in enumerate(_counts(n_samples, len(centers))):
        parts.append(centers[k] + rng.normal(scale=cluster_std, size=(n, centers.shape[1])))
        labels.append(np.full(n, k))
    return _finish(rng, np.concatenate(parts), np.concatenate(labels), 0, shuffle)


def make_sine(n_samples=200, noise=0.1, x_range=(-math.pi, math.pi), frequency=1.0, seed=0):
    """Regression: x uniform in ``x_range``, y = sin(frequency·x) + Gaussian ``noise``.

    Returns ``X`` of shape (n, 1) and ``y`` of shape (n, 1), both float.
    """
    rng = _rng(seed)
    x = rng.uniform(*x_range, size=(n_samples, 1))
    y = np.sin(frequency * x) + rng.normal(scale=noise, size=x.shape) if noise else np.sin(
        frequency * x)
    dtype = backend.get_default_dtype()
    return x.astype(dtype), y.astype(dtype)


def load_digits(scale=True):
    """scikit-learn's bundled 8×8 handwritten digits: 1797 images, 64 features, 10 classes.

    Needs no download (the data ship with scikit-learn, the ``data`` extra).
    With ``scale=True`` the pixel values 0..16 are divided by 16.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits  # optional (the data extra)
    except ImportError:
        raise ImportError("load_digits needs scikit-learn, which is not installed: run "
                          "pip install 'tinygrad-opt[data]'.") from None
    bunch = sk_load_digits()
    X = bunch.data / 16.0 if scale else bunch.data
    return X.astype(backend.get_default_dtype()), bunch.target.astype(np.int64)


# -- splits -------------------------------------------------------------------------------------


def _as_array(a):
    """The backend array of a Tensor or array; lists become arrays as ``Tensor`` makes them."""
    if isinstance(a, Tensor):
        return a.data
    return a if hasattr(a, "shape") and not isinstance(a, np.generic) else Tensor(a).data


def _host(a):
    return backend.to_host(_as_array(a))


def _is_labels(y):
    return y is not None and y.ndim == 1 and y.dtype.kind in "iub"


def _apportion(total, weights):
    """Integers summing to ``total``, proportional to ``weights`` (largest remainder)."""
    weights = np.asarray(weights, dtype=np.float64)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:total - counts.sum()]] += 1
    return counts


Split = namedtuple("Split", ["train", "val", "test"])
Split.__doc__ = """``(train, val, test)``; each part is ``(X, y)``, or ``X`` alone when no ``y`` was
given. Unpacks into three, or reach the parts by name: ``split.train``."""


def train_val_test_split(X, y=None, *, val_size=0.2, test_size=0.2, stratify=None, shuffle=True,
                         seed=0, return_indices=False):
    """Split a data set three ways: train (60%), validation (20%), test (20%) by default.

    ``val_size`` and ``test_size`` are fractions in [0, 1) (their sum below 1) or
    sample counts. ``stratify=None`` stratifies whenever ``y`` holds integer class
    labels (each class keeps its proportion in every part, to within one
    sample); ``True``/``False`` force it, an array gives the labels to stratify
    by. The split is random but seeded: the same ``seed`` gives the same split.

    Returns ``(train, val, test)``, each ``(X_part, y_part)`` (or ``X_part`` when
    ``y`` is None); with ``return_indices=True``, the three index arrays instead.

        train, val, test = train_val_test_split(X, y)
        history = fit(model, loss_fn, optimizer, train, val)
    """
    Xa = _as_array(X)
    n = len(Xa)
    ya = None if y is None else _as_array(y)
    if ya is not None and len(ya) != n:
        raise ValueError(f"train_val_test_split: X has {n} samples but y has {len(ya)}; "
                         "they must match.")
    n_val, n_test = _size(val_size, n, "val_size"), _size(test_size, n, "test_size")
    if n_val + n_test >= n:
        raise ValueError(f"train_val_test_split: val ({n_val}) and test ({n_test}) leave no "
                         f"training samples out of {n}; make val_size + test_size smaller.")
    if stratify is None:
        labels = _host(ya) if _is_labels(ya) else None
    elif stratify is True:
        if not _is_labels(ya):
            raise ValueError("train_val_test_split: stratify=True needs y to hold integer "
                             "class labels (a 1-D integer array).")
        labels = _host(ya)
    elif stratify is False:
        labels = None
    else:
        labels = _host(stratify)
    if labels is not None and not shuffle:
        raise ValueError("train_val_test_split: a stratified split shuffles; pass "
                         "shuffle=True or stratify=False.")
    rng = _rng(seed)
    if labels is None:
        order = rng.permutation(n) if shuffle else np.arange(n)
        parts = [order[:n - n_val - n_test], order[n - n_val - n_test:n - n_test],
                 order[n - n_test:]]
    else:
        classes, inverse, class_sizes = np.unique(labels, return_inverse=True,
                                                  return_counts=True)
        # counts[c] = (train, val, test) for class c; columns sum to the part sizes
        test_c = _apportion(n_test, class_sizes)
        val_c = _apportion(n_val, class_sizes - test_c)
        parts = [[], [], []]
        for c in range(len(classes)):
            members = rng.permutation(np.flatnonzero(inverse == c))
            a, b = len(members) - val_c[c] - test_c[c], len(members) - test_c[c]
            parts[0].append(members[:a])
            parts[1].append(members[a:b])
            parts[2].append(members[b:])
        parts = [rng.permutation(np.concatenate(p)) for p in parts]
    if return_indices:
        return tuple(parts)
    pieces = [_take(Xa, p) if ya is None else (_take(Xa, p), _take(ya, p)) for p in parts]
    return Split(*pieces)


def _size(size, n, name):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if not 0 <= size < n:
            raise ValueError(f"{name}={size} must be a count between 0 and {n - 1}.")
        return int(size)
    if not 0 <= size < 1:
        raise ValueError(f"{name}={size} must be a fraction in [0, 1) or a sample count.")
    return round(size * n)


def _take(array, index):
    if not isinstance(array, np.ndarray):
        index = backend.xp_of((array,)).asarray(index)
    return array[index]


class KFold:
    """K-fold cross validation: each sample is in the validation fold exactly once.

    ``split(X)`` yields ``(train_index, val_index)`` pairs of index arrays, one per
    fold; the first ``n % n_splits`` folds hold one sample more (as scikit-learn).
    With ``shuffle=True`` the samples are permuted first, seeded by ``seed``.
    """

    def __init__(self, n_splits=5, shuffle=False, seed=None):
        if int(n_splits) < 2:
            raise ValueError(f"KFold: n_splits={n_splits} must be at least 2.")
        self.n_splits, self.shuffle, self.seed = int(n_splits), bool(shuffle), seed

    def get_n_splits(self, X=None, y=None):
        return self.n_splits

    def _folds(self, n, y):
        order = _rng(self.seed).permutation(n) if self.shuffle else np.arange(n)
        sizes = _counts(n, self.n_splits)
        return np.split(order, np.cumsum(sizes)[:-1])

    def split(self, X, y=None):
        n = len(_as_array(X))
        if n < self.n_splits:
            raise ValueError(f"{type(self).__name__}: {n} samples cannot make "
                             f"{self.n_splits} folds; use n_splits <= {n}.")
        folds = self._folds(n, None if y is None else _host(y))
        for k, val_index in enumerate(folds):
            train_index = np.concatenate([f for j, f in enumerate(folds) if j != k])
            yield np.sort(train_index), np.sort(val_index)

    def __repr__(self):
        return f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, " \
               f"seed={self.seed})"


class StratifiedKFold(KFold):
    """K-fold where every fold keeps the class proportions of ``y`` (to within one sample
    per class); ``split(X, y)`` needs the labels."""

    def _folds(self, n, y):
        if y is None:
            raise ValueError("StratifiedKFold.split(X, y) needs the class labels y.")
        rng = _rng(self.seed)
        order = []
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            order.append(rng.permutation(members) if self.shuffle else members)
        order = np.concatenate(order)  # grouped by class; dealing round-robin balances them
        fold_of = np.empty(n, dtype=np.int64)
        fold_of[order] = np.arange(n) % self.n_splits
        return [np.flatnonzero(fold_of == k) for k in range(self.n_splits)]


# -- datasets and the loader --------------------------------------------------------------------


def first_non_finite(array):
    """``(row, value)`` of the first row of ``array`` (NumPy, CuPy or Tensor) holding NaN or
    ±inf, the value a host float; None when every entry is finite (integer arrays always)."""
    a = _as_array(array)
    if a.dtype.kind != "f":
        return None
    xp = backend.xp_of((a,))
    finite = xp.isfinite(a)
    if bool(finite.all()):  # one check (and one GPU sync) in the usual case
        return None
    bad_rows = backend.to_host(~finite.reshape(len(a), -1).all(axis=1)) if a.ndim else [True]
    row = int(np.argmax(bad_rows))
    values = backend.to_host(a[row] if a.ndim else a).reshape(-1)
    return row, float(values[~np.isfinite(values)][0])


class TensorDataset:
    """Arrays or Tensors of equal first dimension, indexed together.

    ``dataset[i]`` is a tuple of Tensors (no gradient); ``dataset.arrays`` the
    backend arrays.
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one array.")
        arrays = tuple(_as_array(t) for t in tensors)
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ValueError("TensorDataset: the arrays have different lengths "
                             f"{[len(a) for a in arrays]}; they must share the first dimension.")
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(Tensor.constant(_take(a, index) if not isinstance(index, (int, slice))
                                     else a[index]) for a in self.arrays)

    def __repr__(self):
        shapes = ", ".join(str(tuple(a.shape)) for a in self.arrays)
        return f"TensorDataset({shapes})"


def as_dataset(data):
    """A TensorDataset from a TensorDataset, a DataLoader's dataset, or a tuple ``(X, y)``."""
    if isinstance(data, TensorDataset):
        return data
    if isinstance(data, DataLoader):
        return data.dataset
    if isinstance(data, (tuple, list)):
        return TensorDataset(*data)
    return TensorDataset(data)


class DataLoader:
    """Mini-batches of a data set: iterating gives ``(X_batch, y_batch)`` Tensors.

    ``len(loader)`` is the number of iterations per epoch: ``ceil(n / batch_size)``,
    or ``floor`` with ``drop_last=True`` (the last, smaller batch is skipped).

    With ``shuffle=True`` each epoch visits the samples in a fresh random order
    that depends on ``(seed, epoch)`` only, so a run resumed at epoch 3 sees the
    batches it would have seen. Each ``iter(loader)`` uses the current ``epoch``
    and then advances it; ``set_epoch(e)`` picks one (``fit`` does, every epoch).
    ``seed=None`` draws a seed from ``tg.manual_seed``'s generator.

    ``dataset`` is a :class:`TensorDataset` or a tuple of arrays/Tensors such as
    ``(X, y)``.
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, seed=None, drop_last=False):
        self.dataset = as_dataset(dataset)
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size={batch_size} must be at least 1.")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if seed is None:
            seed = int(generator().integers(2**31))
        self.seed = int(seed)
        self.epoch = 0
        if len(self) == 0:
            raise ValueError(f"DataLoader: {len(self.dataset)} samples make no batch of "
                             f"{self.batch_size} with drop_last=True; lower batch_size.")

    def __len__(self):
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch):
        """The epoch whose order the next iteration follows."""
        self.epoch = int(epoch)

    def order(self, epoch=None):
        """The sample order of ``epoch`` (the current one by default)."""
        n = len(self.dataset)
        if not self.shuffle:
            return None
        return np.random.default_rng([self.seed, self.epoch if epoch is None else epoch]) \
            .permutation(n)

    def __iter__(self):
        order = self.order()
        self.epoch += 1
        arrays = self.dataset.arrays
        n, b = len(self.dataset), self.batch_size
        stop = n - n % b if self.drop_last else n
        make = Tensor._make
        if order is None:
            for start in range(0, stop, b):
                yield tuple(make(a[start:start + b], False, None) for a in arrays)
            return
        gpu = [not isinstance(a, np.ndarray) for a in arrays]
        for start in range(0, stop, b):
            index = order[start:start + b]
            yield tuple(make(_take(a, index) if g else a[index], False, None)
                        for a, g in zip(arrays, gpu))

    def state_dict(self):
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
