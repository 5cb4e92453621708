"""Functions of ``nn``: activations, ``linear``, ``dropout`` and the losses (PyTorch's
``torch.nn.functional`` names, arguments, defaults and formulas).

Every loss is built from differentiable ops (two of them fused, see ``nn/fused.py``),
so it can be differentiated twice: Hessian-vector products and Newton steps work
through it. Labels are picked with a gather (``SelectAlong``), never a one-hot matrix.

``reduction`` is ``"mean"`` (the default), ``"sum"`` or ``"none"`` everywhere.
"""

import warnings

import numpy as np

from .. import backend, capture
from ..creation import generator
from ..op import is_grad_enabled
from ..ops.reduce import SelectAlong
from ..tensor import Tensor
from . import fused

_REDUCTIONS = ("mean", "sum", "none")


# -- helpers ------------------------------------------------------------------------------------


def _tensor(x, like=None):
    """``x`` as a Tensor; arrays and numbers take ``like``'s float dtype and device."""
    if isinstance(x, Tensor):
        return x
    if like is None:
        return Tensor(x)
    if isinstance(x, np.ndarray) and x.dtype.kind != "f":
        return Tensor(x, device=like.device)
    return Tensor(x, dtype=like.dtype if like.dtype.kind == "f" else None, device=like.device)


def _check_reduction(where, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{where}: reduction={reduction!r} is not a valid value for "
                         "reduction; use 'mean', 'sum' or 'none'.")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _same_shape(where, input, target):
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{where}: using a target size {tuple(target.shape)} that is "
                         f"different to the input size {tuple(input.shape)} is not supported; "
                         "make them the same shape (e.g. reshape the input with "
                         ".reshape(-1) or the target with .unsqueeze(1)).")


def _broadcast_warning(where, input, target):
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"{where}: using a target size ({tuple(target.shape)}) that is different "
                      f"to the input size ({tuple(input.shape)}); this will likely lead to "
                      "incorrect results due to broadcasting. Please ensure they have the "
                      "same size.", stacklevel=3)


def _array_on(value, like, dtype=None):
    """The backend array of ``value`` (Tensor, array, list) on ``like``'s device."""
    array = value.data if isinstance(value, Tensor) else value
    if not hasattr(array, "shape") or isinstance(array, np.generic):
        array = np.asarray(array)
    if backend.device_of(array) != like.device:
        array = backend.transfer(array, like.device)
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return array


def _labels(where, target, like):
    """Integer class labels as an int64 array on ``like``'s device."""
    array = _array_on(target, like)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{where}: the target must hold class indices as integers, got "
                        f"{array.dtype} of shape {tuple(array.shape)}; convert it with "
                        "tg.tensor(y, dtype='int64') (probabilities of the input's shape are "
                        "accepted by cross_entropy only).")
    return array if array.dtype == np.int64 else array.astype(np.int64)


@capture.host_call  # tg.jit checks the labels of every call again
def _checked_labels(where, labels, n_classes, ignore_index):
    """Raise unless every label of host ``labels`` is a class or ignore_index; return
    the mask of the ignored labels, or None when none is ignored."""
    ignored = None
    # One reduction checks the common case: seen as unsigned, a negative label is huge.
    in_range = labels.size == 0 or int(labels.view(np.uint64).max()) < n_classes
    if ignore_index is not None and (not in_range or 0 <= ignore_index < n_classes):
        mask = labels == ignore_index
        if bool(mask.any()):
            ignored = mask
    kept = labels if ignored is None else labels[~ignored]
    low, high = (0, 0) if in_range or not kept.size else (int(kept.min()), int(kept.max()))
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise IndexError(f"{where}: target {bad} is out of bounds: the labels must be in "
                         f"[0, {n_classes - 1}] for an input with {n_classes} classes"
                         + ("" if ignore_index is None else
                            f" (or equal ignore_index={ignore_index})") + ".")
    return ignored


def _none_ignored(where, labels, n_classes, ignore_index):
    """True when no label is ignore_index (and all are classes, else IndexError)."""
    return _checked_labels(where, labels, n_classes, ignore_index) is None


def _sample_weights(where, labels, n_classes, weight, ignore_index, like):
    """Check the labels and give (labels safe to index with, per-sample weights or None,
    sum of the weights, mask of the ignored labels or None): ignored labels get weight 0,
    others the class weight."""
    xp = backend.xp_of((labels,))
    ignored = None
    if type(labels) is np.ndarray:
        ignored = _checked_labels(where, labels, n_classes, ignore_index)
    elif capture.decided_by_inputs(labels):
        # Labels that tg.jit takes as an input: it checks them again before every replay,
        # and records the step again (eagerly) when ignore_index comes or goes.
        if not capture.decide(_none_ignored, where, labels, n_classes, ignore_index):
            ignored = labels == ignore_index
    else:
        # On a GPU, reading min/max back would stop the device at every step: as PyTorch on
        # CUDA, device labels are not range-checked here, and ignore_index is masked
        # without first asking whether it occurs. (Host labels that a step captured by
        # tg.jit computes itself are masked the same way, and checked again at every
        # replay by a host call.)
        if ignore_index is not None:
            ignored = labels == ignore_index
        if isinstance(labels, np.ndarray):
            _checked_labels(where, labels, n_classes, ignore_index)
    weights = None
    if weight is not None:
        w = _array_on(weight, like, like.dtype)
        if tuple(w.shape) != (n_classes,):
            raise ValueError(f"{where}: weight has shape {tuple(w.shape)}, expected one "
                             f"weight per class: ({n_classes},).")
        safe = labels if ignored is None else xp.where(ignored, 0, labels)
        weights = w[safe]
        if ignored is not None:
            weights = weights * (~ignored)
        return safe, weights, weights.sum(), ignored
    if ignored is not None:
        safe = xp.where(ignored, 0, labels)
        weights = (~ignored).astype(like.dtype)
        return safe, weights, weights.sum(), ignored
    return labels, None, labels.shape[0], None


def _class_last(where, input, target_ndim):
    """(N, C, d1, ...) logits as (N*d1*..., C), and a function that reshapes a
    per-sample result back to (N, d1, ...)."""
    if input.ndim < 2:
        raise ValueError(f"{where}: expected an input of shape (N, C) or (C,), got "
                         f"{tuple(input.shape)}.")
    if input.ndim == 2:
        return input, None
    n_classes = input.shape[1]
    outer = (input.shape[0],) + tuple(input.shape[2:])
    moved = input.permute(0, *range(2, input.ndim), 1).reshape(-1, n_classes)
    return moved, outer


def _class_rows(where, input, target, shown_shape):
    """Scores (N, C, d1, ...) and integer labels (N, d1, ...) as rows: the scores as
    (N·d1·..., C) (``_class_last``), the outer shape or None, and the labels flattened
    to one per row. The caller's input shape ``shown_shape`` may also be (C,), with a
    scalar label; any other target shape is refused (``_check_target_shape``)."""
    labels = _labels(where, target, input)
    _check_target_shape(where, tuple(shown_shape), tuple(labels.shape))
    rows, outer = _class_last(where, input, labels.ndim)
    return rows, outer, labels.reshape(-1)


def _check_target_shape(where, shown, got):
    """PyTorch's rule, checked exactly so that no label is paired with the wrong position:
    scores (N, C, d1, ...) take labels (N, d1, ...), scores (C,) one label. ValueError
    when the batch sizes differ, RuntimeError for any other shape, as in PyTorch."""
    if len(shown) == 1:
        if got not in ((), (1,)):
            raise ValueError(f"{where}: an input of shape {shown} (one sample) takes one "
                             f"class index as its target, got shape {got}; pass a scalar "
                             "label, or a batch of scores (N, C) with labels (N,).")
        return
    expected = (shown[0],) + shown[2:]
    if got == expected:
        return
    batch = got[0] if got else 0
    if batch != shown[0]:
        raise ValueError(f"{where}: expected input batch_size ({shown[0]}) to match target "
                         f"batch_size ({batch}): for an input of shape {shown} the target "
                         f"must have shape {expected}, got {got}.")
    why = ("0D or 1D target tensor expected, multi-target not supported"
           if len(shown) == 2 else f"expected target size {list(expected)}, got {list(got)}")
    raise RuntimeError(f"{where}: {why}: the target of an input of shape {shown} holds one "
                       f"class index per position, shape {expected}, got {got}; reshape it "
                       f"(e.g. target.reshape{expected}).")


# -- activations and layers ---------------------------------------------------------------------


def relu(input):
    return _tensor(input).relu()


def tanh(input):
    return _tensor(input).tanh()


def sigmoid(input):
    return _tensor(input).sigmoid()


def leaky_relu(input, negative_slope=0.01):
    return _tensor(input).leaky_relu(negative_slope)


def identity(input):
    return input


def _softmax_dim(where, ndim, dim):
    if dim is not None:
        return dim
    warnings.warn(f"Implicit dimension choice for {where} has been deprecated. Change the call "
                  "to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None):
    """exp(x) / Σ exp(x) along ``dim`` (computed stably)."""
    input = _tensor(input)
    return input.softmax(_softmax_dim("softmax", input.ndim, dim))


def log_softmax(input, dim=None):
    """x - logsumexp(x) along ``dim`` (computed stably)."""
    input = _tensor(input)
    return input.log_softmax(_softmax_dim("log_softmax", input.ndim, dim))


def linear(input, weight, bias=None):
    """y = x Wᵀ + b with weight (out_features, in_features), as ``torch.nn.functional.linear``."""
    return fused.Linear.apply(_tensor(input), weight, bias)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by 1/(1 - p) when
    ``training``; the identity otherwise. The mask comes from the generator that
    ``tg.manual_seed`` seeds. (``inplace`` is accepted for PyTorch's signature; the
    result is always a new tensor.)"""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}.")
    input = _tensor(input)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = generator().random(input.shape) >= p
    mask = keep.astype(input.dtype) * input.dtype.type(1.0 / (1.0 - p))
    if input.device != "cpu":
        mask = backend.transfer(mask, input.device)
    return input * Tensor.constant(mask)


def one_hot(tensor, num_classes=-1):
    """Integer labels (any shape) as int64 one-hot vectors along a new last dimension."""
    labels = tensor.data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot is only applicable to index tensors, got {labels.dtype}.")
    xp = backend.xp_of((labels,))
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise IndexError(f"one_hot: class values must be in [0, {num_classes - 1}].")
    out = xp.zeros(labels.shape + (num_classes,), dtype=np.int64)
    xp.put_along_axis(out, labels[..., None].astype(np.int64), 1, axis=-1)
    return Tensor.constant(out)


# -- regression losses --------------------------------------------------------------------------


def mse_loss(input, target, reduction="mean"):
    """Mean squared error: reduce((x - y)²)."""
    _check_reduction("mse_loss", reduction)
    input = _tensor(input)
    target = _tensor(target, input)
    _broadcast_warning("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):
    """Mean absolute error: reduce(|x - y|)."""
    _check_reduction("l1_loss", reduction)
    input = _tensor(input)
    target = _tensor(target, input)
    _broadcast_warning("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


# -- classification losses ----------------------------------------------------------------------


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` (N, C) at integer labels
    ``target`` (N,): loss_i = -w[t_i] input[i, t_i]; the mean divides by Σ_i w[t_i]
    (by N without ``weight``). Labels equal to ``ignore_index`` count for nothing.
    Also (C,) with a scalar label, and (N, C, d1, ...) with labels (N, d1, ...)."""
    _check_reduction("nll_loss", reduction)
    input = _tensor(input)
    shown = input.shape
    unbatched = input.ndim == 1
    if unbatched:
        input = input.reshape(1, -1)
    logp, outer, flat = _class_rows("nll_loss", input, target, shown)
    safe, weights, total, _ = _sample_weights("nll_loss", flat, logp.shape[1], weight,
                                           ignore_index, logp)
    losses = -SelectAlong.apply(logp, safe, dim=1, keepdim=False)
    if weights is not None:
        losses = losses * Tensor.constant(weights)
    if reduction == "mean":
        return losses.sum() / Tensor.constant(backend.xp_of((flat,)).asarray(total, dtype=logp.dtype)) \
            if weights is not None else losses.mean()
    if reduction == "sum":
        return losses.sum()
    if unbatched:
        return losses.reshape(())
    return losses if outer is None else losses.reshape(outer)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy of logits ``input`` (N, C) and integer labels ``target`` (N,):
    loss_i = logsumexp(x_i) - x_i[t_i] (times w[t_i]), computed stably; the mean divides
    by Σ_i w[t_i] (by N without ``weight``), as PyTorch does.

    Also: (C,) logits with a scalar label; (N, C, d1, ...) with labels (N, d1, ...);
    probabilities of the input's shape as target; ``label_smoothing`` ε mixes the
    one-hot target with the uniform distribution: (1 - ε) nll + ε/C Σ_c w_c (-log p_c).
    """
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got "
                         f"{label_smoothing}.")
    input = _tensor(input)
    if (isinstance(target, (Tensor, np.ndarray)) and target.dtype.kind == "f"
            and tuple(target.shape) == tuple(input.shape)):
        return _soft_cross_entropy(input, _tensor(target, input), weight, reduction,
                                   label_smoothing)
    unbatched = input.ndim == 1
    x = input.reshape(1, -1) if unbatched else input
    logits, outer, flat = _class_rows("cross_entropy", x, target, input.shape)
    n_classes = logits.shape[1]
    safe, weights, total, ignored = _sample_weights("cross_entropy", flat, n_classes, weight,
                                                    ignore_index, logits)
    cache = {} if logits.requires_grad and is_grad_enabled() else None
    loss = fused.CrossEntropy.apply(logits, safe, weights=weights, reduction=reduction,
                                   denom=total, cache=cache)
    if label_smoothing > 0.0:
        logp = logits.log_softmax(1)
        if weight is not None:
            w = Tensor.constant(_array_on(weight, logits, logits.dtype))
            smooth = -(logp * w).sum(1)
        else:
            smooth = -logp.sum(1)
        if ignored is not None:
            smooth = smooth * Tensor.constant((~ignored).astype(logits.dtype))
        if reduction == "mean":
            smooth = smooth.sum() / Tensor.constant(backend.xp_of((flat,)).asarray(total,
                                                                          dtype=logits.dtype))
        elif reduction == "sum":
            smooth = smooth.sum()
        loss = loss * (1.0 - label_smoothing) + smooth * (label_smoothing / n_classes)
    if reduction == "none":
        if unbatched:
            return loss.reshape(())
        if outer is not None:
            return loss.reshape(outer)
    return loss


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    """Cross-entropy with class probabilities as target: -Σ_c w_c y_c log p_c."""
    _same_shape("cross_entropy", input, target)
    class_dim = 0 if input.ndim == 1 else 1
    n_classes = input.shape[class_dim]
    if label_smoothing > 0.0:
        target = target * (1.0 - label_smoothing) + label_smoothing / n_classes
    logp = input.log_softmax(class_dim)
    terms = logp * target
    if weight is not None:
        w = _array_on(weight, input, input.dtype)
        shape = [1] * input.ndim
        shape[class_dim] = n_classes
        terms = terms * Tensor.constant(w.reshape(shape))
    losses = -terms.sum(class_dim)
    return _reduce(losses, reduction)


@capture.host_call  # tg.jit checks the values of every call again
def _check_probabilities(data):
    if data.size and (data.min() < 0 or data.max() > 1):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and "
                         "1 (probabilities); for logits use binary_cross_entropy_with_logits.")


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w (y log x + (1 - y) log(1 - x)) for probabilities x in [0, 1], each log
    clamped at -100 (so x = 0 or 1 gives a finite loss and gradient), as PyTorch."""
    _check_reduction("binary_cross_entropy", reduction)
    input = _tensor(input)
    target = _tensor(target, input)
    _same_shape("binary_cross_entropy", input, target)
    if isinstance(input.data, np.ndarray):
        _check_probabilities(input.data)
    loss = fused.BinaryCrossEntropy.apply(input, target)
    if weight is not None:
        loss = loss * _tensor(weight, input).detach()
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """Sigmoid and binary cross-entropy in one stable formula, for logits x:
    loss = (1 - y) x + (1 + (p - 1) y) (log(1 + e^-|x|) + max(-x, 0)), times w,
    with p = ``pos_weight`` (per class, broadcast over the last dimension)."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    input = _tensor(input)
    target = _tensor(target, input)
    _same_shape("binary_cross_entropy_with_logits", input, target)
    pw = None if pos_weight is None else _array_on(pos_weight, input, input.dtype)
    loss = fused.BinaryCrossEntropyWithLogits.apply(input, target, pos_weight=pw)
    if weight is not None:
        loss = loss * _tensor(weight, input).detach()
    return _reduce(loss, reduction)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    """The multiclass SVM hinge loss of the lecture, as PyTorch defines it: for scores
    x (N, C) and labels y,

        loss_i = Σ_{j ≠ y_i} max(0, margin - x_i[y_i] + x_i[j])^p / C

    (times w[y_i] with ``weight``); ``p`` is 1 or 2. Note the division by C: the
    lecture's L_i is C times PyTorch's (use reduction="sum" and multiply by C / N to
    get the lecture's mean exactly)."""
    _check_reduction("multi_margin_loss", reduction)
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 are supported, got p={p}.")
    input = _tensor(input)
    unbatched = input.ndim == 1
    x = input.reshape(1, -1) if unbatched else input
    if x.ndim != 2:
        raise ValueError(f"multi_margin_loss: expected an input of shape (N, C) or (C,), got "
                         f"{tuple(input.shape)}.")
    labels = _labels("multi_margin_loss", target, x).reshape(-1)
    n, n_classes = x.shape
    if labels.shape[0] != n:
        raise ValueError(f"multi_margin_loss: expected a target of shape ({n},), got "
                         f"{tuple(labels.shape)}.")
    _sample_weights("multi_margin_loss", labels, n_classes, None, None, x)
    xp = backend.xp_of((labels,))
    correct = SelectAlong.apply(x, labels, dim=1, keepdim=True)       # x_i[y_i], (N, 1)
    hinge = (x - correct + margin).relu()
    if p == 2:
        hinge = hinge * hinge
    others = xp.ones((n, n_classes), dtype=x.dtype)                 # drop the j = y_i terms
    xp.put_along_axis(others, labels[:, None], 0, axis=1)
    losses = (hinge * Tensor.constant(others)).sum(1) * (1.0 / n_classes)
    if weight is not None:
        w = _array_on(weight, x, x.dtype)
        losses = losses * Tensor.constant(w[labels])
    if unbatched and reduction == "none":
        return losses.reshape(())
    return _reduce(losses, reduction)


def svm_loss(input, target, delta=1.0, reduction="mean"):
    """The multiclass SVM loss of the slides (cs231n): for scores s (N, C) and labels y,

        L_i = Σ_{j ≠ y_i} max(0, s_j - s_{y_i} + Δ),    loss = 1/N Σ_i L_i

    (``reduction="sum"``: Σ_i L_i; ``"none"``: the L_i). It is C times PyTorch's
    :func:`multi_margin_loss` with ``p=1, margin=Δ`` -- PyTorch divides each L_i by
    the number of classes -- and is computed that way. With Δ = 1 and scores
    (3.2, 5.1, -1.7) for label 0 it is max(0, 5.1 - 3.2 + 1) + max(0, -1.7 - 3.2 + 1)
    = 2.9, the slide's cat."""
    _check_reduction("svm_loss", reduction)
    input = _tensor(input)
    per_sample = multi_margin_loss(input, target, p=1, margin=delta, reduction="none")
    return _reduce(per_sample * float(input.shape[-1]), reduction)


# -- regularization -----------------------------------------------------------------------------


def l2_penalty(params, weight_decay=1.0):
    """λ R(W) with R(W) = ½ Σ ‖W‖² over ``params`` (a Module or an iterable of Tensors),
    so that the regularized loss of the lecture reads

        L(W) = 1/N Σ_i L_i + l2_penalty(model, λ)

    and its gradient adds λ W: exactly what ``optim.SGD(weight_decay=λ)`` adds. The
    lecture's R(W) = Σ W² (no ½) is ``l2_penalty(model, 2 * λ)``. Pass
    ``[m.weight for m in model.modules() if isinstance(m, nn.Linear)]`` to leave the
    biases out."""
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    elif isinstance(params, Tensor):
        params = [params]
    total = None
    for param in params:
        term = (param * param).sum()
        total = term if total is None else total + term
    if total is None:
        return Tensor(0.0)
    return total * (0.5 * weight_decay)
