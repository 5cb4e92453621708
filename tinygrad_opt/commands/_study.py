"""The set-up the study subcommands (demo, train, race, hessian, lr-find, sweep, gradcheck,
...) share, so that each ``run()`` holds only what is its own: the flags' checks (optimizer
specs, numbers, data sets and files, each turning a bad value into a one-line
:class:`~tinygrad_opt.commands.UsageError`, exit code 2), the seeded MLP and its data, the
progress bar, and the files written into ``--out``."""

import contextlib
import json
import os
import warnings
from dataclasses import dataclass

import numpy as np

import tinygrad_opt as tg

from .. import data, nn
from ..study import plots, specs
from ..train import progress_bar
from . import UsageError

DATASETS = ("moons", "circles", "spirals", "xor", "blobs", "sine", "digits")


def usage(message):
    return UsageError(message)


def optimizer(text, flag="--optimizer"):
    """One optimizer spec (``adam``, ``sgd:lr=0.1,momentum=0.9``)."""
    try:
        found = specs.parse_list(text)
    except ValueError as error:
        raise usage(f"{flag}: {error}") from None
    if len(found) != 1:
        raise usage(f"{flag} takes one optimizer, got {len(found)}; use commas only inside "
                    "its settings, as in sgd:lr=0.1,momentum=0.9.")
    return found[0]


def optimizers(text, flag="--optimizers"):
    """Several optimizer specs separated by commas (``sgd,adam:lr=0.1,newton``)."""
    try:
        return specs.parse_list(text)
    except ValueError as error:
        raise usage(f"{flag}: {error}") from None


def with_lr(spec, lr, flag="--lr"):
    """``spec`` with ``--lr`` applied (positive), or unchanged when lr is None."""
    if lr is None:
        return spec
    positive(lr, flag)
    if not spec.takes_lr:
        raise usage(f"{flag}: {spec.name} takes no learning rate.")
    return spec.with_lr(lr)


def positive(value, flag):
    """``value`` if it is positive or None (a flag left unset)."""
    if value is None:
        return value
    if not value > 0:
        raise usage(f"{flag} must be positive, got {value:g}.")
    return value


def at_least(value, low, flag):
    """``value`` if it is at least ``low`` or None (a flag left unset)."""
    if value is not None and value < low:
        raise usage(f"{flag} must be at least {low}, got {value}.")
    return value


def _flag(dest):
    """``"train_epochs"`` -> ``"--train-epochs"``: the flag argparse stored as ``dest``."""
    return "--" + dest.replace("_", "-")


def check_bounds(args, minimum=None, above_zero=()):
    """Check numeric flags in one call: ``minimum`` maps a flag's name in ``args`` to its
    lowest value, ``above_zero`` names the flags that must be positive (an unset flag,
    None, passes); the first bad one is a UsageError naming it."""
    for dest, low in (minimum or {}).items():
        at_least(getattr(args, dest), low, _flag(dest))
    for dest in above_zero:
        positive(getattr(args, dest), _flag(dest))


def sizes(text, n_in, n_out, flag="--hidden"):
    """``"16-16"`` -> [n_in, 16, 16, n_out]; ``""`` or ``"0"`` -> no hidden layer."""
    text = str(text).strip()
    if text in ("", "0", "none"):
        return [n_in, n_out]
    try:
        hidden = [int(h) for h in text.split("-")]
    except ValueError:
        hidden = []
    if not hidden or any(not 1 <= h <= 4096 for h in hidden):
        raise usage(f"{flag} expects layer widths from 1 to 4096 joined by '-', such as 16-16; "
                    f"got {text!r}.")
    return [n_in] + hidden + [n_out]


def dataset(name, samples=300, noise=0.2, seed=0, flag="--data"):
    """(X, y) of a built-in toy set or of a file (.npz with X and y, or .csv/.txt whose
    last column is the target). Integer targets are class labels."""
    makers = {"moons": data.make_moons, "circles": data.make_circles,
              "spirals": data.make_spirals, "xor": data.make_xor}
    if name in makers:
        return makers[name](samples, noise=noise, seed=seed)
    if name == "blobs":
        return data.make_blobs(samples, centers=3, seed=seed)
    if name == "sine":
        return data.make_sine(samples, noise=noise, seed=seed)
    if name == "digits":
        return data.load_digits()
    if not os.path.exists(name):
        raise usage(f"{flag} {name}: no such data set or file; use one of "
                    f"{', '.join(DATASETS)}, or a .npz (arrays X, y) or .csv file.")
    try:
        if name.endswith(".npz"):
            with np.load(name) as archive:
                X, y = archive["X"], archive["y"]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data": checked below
                try:
                    table = np.loadtxt(name, delimiter=",", ndmin=2)
                except ValueError:
                    table = np.loadtxt(name, delimiter=",", ndmin=2, skiprows=1)
            X, y = table[:, :-1], table[:, -1]
            if np.all(y == np.round(y)):
                y = y.astype(np.int64)
    except (OSError, ValueError, KeyError, EOFError) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0] or \
            type(error).__name__
        raise usage(f"{flag} {name}: cannot read it ({reason}); give a .npz with arrays X and "
                    "y, or a numeric .csv whose last column is the target.") from None
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) != len(y) or len(X) < 5:
        raise usage(f"{flag} {name}: expected X of shape (n, features) and y of length n "
                    f"with n >= 5, got X {X.shape} and y {np.shape(y)}.")
    if np.asarray(y).dtype.kind == "f":
        y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
    return X, np.asarray(y)


def is_classification(y):
    return y.ndim == 1 and y.dtype.kind in "iub"


def loss_for(y):
    """Cross entropy for class labels, MSE for real targets."""
    return nn.functional.cross_entropy if is_classification(y) else nn.functional.mse_loss


def out_dir(path, flag="--out"):
    """Create the output folder (a one-line error if that is impossible)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise usage(f"{flag} {path}: cannot create it ({error.strerror or error}).") from None
    if not os.access(path, os.W_OK):
        raise usage(f"{flag} {path}: the folder is not writable.")
    return path


def new_folders(path):
    """The folders from ``path`` up that do not exist yet (deepest first): what creating
    ``path`` would add, so that a command that fails can take them away again."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def remove_empty(folders):
    """Remove ``folders`` (deepest first) that are still empty: a failed command leaves
    nothing behind."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            break


@contextlib.contextmanager
def progress(args, total, description, show_labels=False):
    """A tqdm bar of ``total`` units for the ``with`` block, closed however it ends. It
    yields the ``progress=`` callback of the study functions, ``tick(value)``: one unit
    done (``value`` shown beside the bar when ``show_labels``); None when there is no
    bar (--no-progress, not a terminal, or no tqdm)."""
    bar = progress_bar(not args.no_progress, total)
    if bar is None:
        yield None
        return
    bar.set_description(description)

    def tick(value):
        if show_labels:
            bar.set_postfix_str(value)
        bar.update(1)

    try:
        yield tick
    finally:
        bar.close()


class Outputs:
    """The files a command writes into its folder (created, or a one-line error, at
    once), named in the command's last line: ``wrote a.json, b.png in DIR``."""

    def __init__(self, folder, names=()):
        self.folder, self.names = out_dir(folder), list(names)

    def path(self, name):
        """Where ``name`` goes; from now on the last line lists it."""
        self.names.append(name)
        return os.path.join(self.folder, name)

    def json(self, name, record, indent=None):
        with open(self.path(name), "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=indent)

    def text(self, name, text):
        with open(self.path(name), "w", encoding="utf-8") as handle:
            handle.write(text)

    def report(self):
        print(f"wrote {', '.join(self.names)} in {self.folder}")


def plots_or_none():
    """The plots module, or None when matplotlib is missing (the command then skips
    pictures and says so)."""
    return plots if plots.available() else None


def add_progress(parser):
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they only show on a terminal anyway)")


def add_data_arguments(parser, samples, hidden, data_help=None, activation_help=None):
    """The data set and network flags every MLP subcommand takes: --data, --samples,
    --noise, --hidden, --activation (``samples`` and ``hidden`` are the defaults)."""
    parser.add_argument("--data", default="moons", metavar="NAME|FILE",
                        help=data_help or f"{', '.join(DATASETS)} (default moons), "
                                          "or a .npz/.csv file")
    parser.add_argument("--samples", type=int, default=samples,
                        help=f"toy data: points ({samples})")
    parser.add_argument("--noise", type=float, default=0.2, help="toy data: noise (0.2)")
    parser.add_argument("--hidden", default=hidden, metavar="W-W",
                        help=f"hidden layer widths (default {hidden})")
    parser.add_argument("--activation", default="tanh",
                        help=activation_help or "activation (default tanh)")


def mini_batch(spec, message, needs_lr=False):
    """``spec`` when it can train with mini-batches (first order, not L-BFGS, and with a
    learning rate when ``needs_lr``); otherwise a UsageError with ``message``."""
    if spec.contract != "first" or spec.name == "lbfgs" or (needs_lr and not spec.takes_lr):
        raise usage(message)
    return spec


def mlp_data(args):
    """(X, y, layer sizes) from --data/--samples/--noise/--seed and --hidden: the input
    width is X's, the output width the number of classes (or of target columns)."""
    X, y = dataset(args.data, args.samples, args.noise, args.seed)
    n_out = int(y.max()) + 1 if is_classification(y) else y.shape[1]
    return X, y, sizes(args.hidden, X.shape[1], n_out)


def seeded_mlp(layer_sizes, activation, seed):
    """A fresh ``nn.MLP`` drawn after ``tg.manual_seed(seed)``: the same seed, the same
    initial weights; an unknown --activation is a UsageError."""
    tg.manual_seed(seed)
    try:
        return nn.MLP(layer_sizes, activation=activation)
    except ValueError as error:
        raise usage(f"--activation: {error}") from None


@dataclass
class MLPStudy:
    """What a study of one MLP trained by mini-batches starts from."""

    spec: specs.OptimizerSpec  # the --optimizer
    X: np.ndarray
    y: np.ndarray
    layer_sizes: list
    loss_fn: object  # cross entropy for class labels, MSE for real targets
    model: nn.MLP
    outputs: Outputs  # the --out folder


def mlp_study(args, first_order_reason, needs_lr=False):
    """The MLP set-up of hessian and lr-find, checked before any work: the --optimizer spec
    (first order, with a learning rate when ``needs_lr``, else a UsageError ending in
    ``first_order_reason``), the data and layer sizes, the seeded MLP, then --out."""
    spec = optimizer(args.optimizer)
    mini_batch(spec, f"--optimizer {spec.name}: {first_order_reason}", needs_lr)
    X, y, layer_sizes = mlp_data(args)
    model = seeded_mlp(layer_sizes, args.activation, args.seed)
    return MLPStudy(spec, X, y, layer_sizes, loss_for(y), model, Outputs(args.out))
