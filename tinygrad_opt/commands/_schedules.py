"""``--schedule SPEC`` of ``train`` and ``lr-find``: a learning-rate schedule by name, with
settings, and a linear warmup in front of any of them, built on ``optim.lr_scheduler``.

A SPEC is ``NAME`` or ``NAME:key=value,...``, or ``warmup:W+SPEC``; the schedule is
stepped once per epoch and α₀ is the optimizer's lr. :data:`SPECS` lists the names.
"""

import warnings

from ..optim import SGD
from ..optim import lr_scheduler as S
from ..optim.lr_scheduler import ReduceLROnPlateau
from ..tensor import Tensor
from . import UsageError

SPECS = """NAME or NAME:key=value,... (the values shown are the defaults):
none; cosine (CosineAnnealingLR, T_max = epochs);
step:step_size=N,gamma=G (StepLR; default N = epochs/3, G = 0.1);
multistep:milestones=30-60-90,gamma=0.1 (MultiStepLR; milestones must be given);
exponential:gamma=0.95 (ExponentialLR);
inverse-time:decay=0.1 (α₀/(1+decay·epoch));
inverse-sqrt (α₀/√(epoch+1));
linear (α₀(1 - epoch/epochs));
plateau:factor=0.5,patience=3 (ReduceLROnPlateau on the validation loss);
warmup:W+SPEC puts W epochs of linear warmup from 0 in front of any of them except
plateau, e.g. warmup:5+cosine; SPEC then counts its epochs from the end of the warmup
(warmup-cosine is warmup:epochs/10+cosine)"""
HELP = "learning-rate schedule per epoch (default none). " + SPECS

NAMES = ("none", "cosine", "step", "multistep", "exponential", "inverse-time", "inverse-sqrt",
         "linear", "plateau", "warmup", "warmup-cosine")


def _usage(message):
    return UsageError(message)


def _number(text, key, flag):
    try:
        value = float(text)
    except ValueError:
        raise _usage(f"{flag}: {key}={text!r} is not a number.") from None
    return int(value) if value == int(value) and key in ("step_size", "patience") else value


def _settings(name, text, allowed, flag):
    """``"gamma=0.5,step_size=3"`` -> {"gamma": 0.5, "step_size": 3}, keys checked."""
    settings = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (p.strip() for p in item.partition("="))
        if not sep or key not in allowed:
            choices = ", ".join(allowed) or "no settings"
            raise _usage(f"{flag}: {name} takes {choices}; got {item!r} (as in "
                         f"{name}:{allowed[0] if allowed else 'key'}=...).")
        if key == "milestones":
            try:
                settings[key] = [int(m) for m in value.split("-")]
            except ValueError:
                raise _usage(f"{flag}: milestones are epochs joined by '-', such as "
                             f"30-60-90; got {value!r}.") from None
        else:
            settings[key] = _number(value, key, flag)
    return settings


_ALLOWED = {"none": (), "cosine": (), "inverse-sqrt": (), "linear": (), "warmup-cosine": (),
            "step": ("step_size", "gamma"), "multistep": ("milestones", "gamma"),
            "exponential": ("gamma",), "inverse-time": ("decay",),
            "plateau": ("factor", "patience")}


def build(spec, optimizer, epochs, flag="--schedule"):
    """The scheduler ``spec`` names for ``optimizer`` over ``epochs`` epochs (None for
    "none"); a bad spec is a one-line UsageError."""
    text = str(spec).strip()
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    if name == "warmup":
        steps, plus, inner = rest.partition("+")
        try:
            warm = int(steps)
        except ValueError:
            warm = 0
        if not plus or not 1 <= warm < epochs:
            raise _usage(f"{flag}: write warmup:W+SCHEDULE with W from 1 to {epochs - 1} "
                         f"warmup epochs, as in warmup:5+cosine; got {text!r}.")
        after = build(inner, optimizer, epochs - warm, flag)
        if after is None:
            after = S.LambdaLR(optimizer, lambda epoch: 1.0)
        if isinstance(after, S.ReduceLROnPlateau):
            raise _usage(f"{flag}: plateau reacts to the validation loss and cannot follow a "
                         "warmup; pick another schedule after warmup:W+.")
        return S.LinearWarmup(after, warmup_steps=warm)
    if name not in _ALLOWED:
        raise _usage(f"{flag}: unknown schedule {name!r}; choose from {', '.join(NAMES)} "
                     "(see --help).")
    given = _settings(name, rest, _ALLOWED[name], flag)
    try:
        return _make(S, name, given, optimizer, epochs, flag)
    except (TypeError, ValueError) as error:
        raise _usage(f"{flag} {text}: {error}") from None


def _make(S, name, given, optimizer, epochs, flag):
    if name == "none":
        return None
    if name == "cosine":
        return S.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "warmup-cosine":
        return build(f"warmup:{max(1, epochs // 10)}+cosine", optimizer, epochs, flag)
    if name == "step":
        return S.StepLR(optimizer, step_size=given.get("step_size", max(1, epochs // 3)),
                        gamma=given.get("gamma", 0.1))
    if name == "multistep":
        if "milestones" not in given:
            raise _usage(f"{flag}: multistep needs its epochs, as in "
                         "multistep:milestones=30-60-90,gamma=0.1.")
        return S.MultiStepLR(optimizer, milestones=given["milestones"],
                             gamma=given.get("gamma", 0.1))
    if name == "exponential":
        return S.ExponentialLR(optimizer, gamma=given.get("gamma", 0.95))
    if name == "inverse-time":
        return S.InverseTimeLR(optimizer, decay_rate=given.get("decay", 0.1))
    if name == "inverse-sqrt":
        return S.InverseSqrtLR(optimizer)
    if name == "linear":
        return S.LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=epochs)
    return S.ReduceLROnPlateau(optimizer, factor=given.get("factor", 0.5),
                               patience=given.get("patience", 3))


def check(spec, epochs, flag="--schedule"):
    """Build ``spec`` once on a throwaway optimizer: a bad spec fails before any work."""
    build(spec, SGD([Tensor([0.0], requires_grad=True)], lr=1.0), epochs, flag)
    return spec


def lrs(spec, lr, epochs, flag="--schedule"):
    """The lr of each of ``epochs`` epochs under ``spec`` starting from ``lr`` (plateau is
    drawn for a loss that keeps improving: it never reduces)."""
    optimizer = SGD([Tensor([0.0], requires_grad=True)], lr=lr)
    scheduler = build(spec, optimizer, epochs, flag)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": no training
        for epoch in range(epochs):
            out.append(optimizer.param_groups[0]["lr"])
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(-float(epoch))
            elif scheduler is not None:
                scheduler.step()
    return out
