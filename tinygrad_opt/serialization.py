"""``tg.save`` / ``tg.load``: checkpoints as ``.npz`` files that never run code.

A checkpoint is a zip of ``.npy`` arrays, as ``numpy.savez`` writes: one entry per
array (``a0``, ``a1``, ...) and one entry, ``__tinygrad_opt__``, holding the
structure as JSON -- nested dicts (any hashable keys: optimizer state is keyed by
int), OrderedDicts, lists, tuples, Tensors (dtype, device, requires_grad, Parameter),
NumPy arrays and scalars, ints, floats (nan and inf too), bools, strings, bytes and
None. Everything comes back exactly: same types, dtypes and values; a tensor saved
twice in one object comes back as one tensor.

Loading never unpickles and trusts nothing in the file: it reads each entry's
``.npy`` header, checks the declared size against the bytes the file really holds
*before* allocating, refuses object (pickled) arrays, and walks the JSON structure
with a depth limit, so any file that is not an intact checkpoint -- damaged,
truncated or crafted -- raises :class:`CheckpointError` with one sentence, never a
raw error (a checkpoint of CUDA tensors where CUDA is missing is the one
RuntimeError, as in PyTorch).

Saving writes a temporary file ``.<name>.<pid>.<random>.tmp`` in the same
directory, flushes it to disk and renames it over the target (``os.replace``), so
a crash or an error mid-way never leaves a partial checkpoint behind. A writer
that was killed leaves its temporary file; the next save to the same path removes
those whose process is gone.
"""

import contextlib
import glob
import json
import math
import os
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np

from . import backend, cuda
from .nn.module import Parameter
from .tensor import Tensor

HEADER = "__tinygrad_opt__"
FORMAT = "tinygrad_opt checkpoint"
VERSION = 1
MAX_DEPTH = 100  # nesting levels of the saved structure (deeper is refused both ways)


class CheckpointError(ValueError):
    """The file is not a tinygrad_opt checkpoint (or is damaged)."""


# -- encoding ------------------------------------------------------------------------------------


class _Encoder:
    def __init__(self):
        self.arrays = {}      # entry name -> host array
        self.memo = {}        # id(object) -> entry name (a tensor saved twice is one entry)
        self.keep = []        # keep memoised objects alive while encoding

    def _array(self, obj, array, where):
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        array = backend.to_host(array)
        if array.dtype.hasobject:
            raise TypeError(f"tg.save: cannot save the object array at {where} (dtype object "
                            "would need pickle); convert it to a numeric or string dtype.")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = array
        self.memo[key] = name
        self.keep.append(obj)
        return name

    def encode(self, obj, where="obj", depth=0):
        if depth > MAX_DEPTH:
            raise ValueError(f"tg.save: {where} is nested more than {MAX_DEPTH} levels deep "
                             "(or contains itself); save a flatter structure.")
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, np.generic):
            if obj.dtype.hasobject:
                raise TypeError(f"tg.save: cannot save the object scalar at {where}.")
            name = f"a{len(self.arrays)}"
            self.arrays[name] = np.asarray(obj)
            return {"t": "scalar", "a": name}
        if isinstance(obj, int):
            return obj if type(obj) is int else int(obj)
        if isinstance(obj, float):
            return obj if type(obj) is float else float(obj)
        if isinstance(obj, Tensor):
            entry = {"t": "tensor", "a": self._array(obj, obj.data, where),
                     "device": obj.device}
            if obj.requires_grad:
                entry["requires_grad"] = True
            if isinstance(obj, Parameter):
                entry["parameter"] = True
            return entry
        if isinstance(obj, np.ndarray):
            return {"t": "ndarray", "a": self._array(obj, obj, where)}
        if hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "get"):  # cupy
            return {"t": "device_array", "a": self._array(obj, obj, where),
                    "device": backend.device_of(obj)}
        if isinstance(obj, (bytes, bytearray)):
            name = f"a{len(self.arrays)}"
            self.arrays[name] = np.frombuffer(bytes(obj), dtype=np.uint8)
            return {"t": "bytes", "a": name}
        if isinstance(obj, dict):
            tag = "odict" if isinstance(obj, OrderedDict) else "dict"
            items = []
            for key, value in obj.items():
                items.append([self.encode_key(key, where),
                              self.encode(value, f"{where}[{key!r}]", depth + 1)])
            return {"t": tag, "v": items}
        if isinstance(obj, (list, tuple)):
            tag = "list" if isinstance(obj, list) else "tuple"
            return {"t": tag, "v": [self.encode(v, f"{where}[{i}]", depth + 1)
                                    for i, v in enumerate(obj)]}
        hint = (f" (save its {where}.state_dict() instead)" if callable(
            getattr(obj, "state_dict", None)) else "")
        raise TypeError(f"tg.save: cannot save {where}, a {type(obj).__name__}{hint}; a "
                        "checkpoint holds only Tensors, NumPy arrays, numbers, strings, bools, "
                        "None and dicts, lists and tuples of them (never pickled objects).")

    def encode_key(self, key, where):
        if key is None or isinstance(key, (bool, str, int, float)) and not isinstance(
                key, np.generic):
            return self.encode(key, where)
        if isinstance(key, np.generic):
            return self.encode(key, where)
        if isinstance(key, tuple):
            return {"t": "tuple", "v": [self.encode_key(k, where) for k in key]}
        raise TypeError(f"tg.save: cannot save the dict key {key!r} in {where} (a "
                        f"{type(key).__name__}); keys must be strings, numbers, bools, None "
                        "or tuples of them.")


# -- saving ----------------------------------------------------------------------------------


def _write_zip(file, header, arrays):
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as archive:
        with archive.open(HEADER + ".npy", "w", force_zip64=True) as entry:
            np.lib.format.write_array(entry, header, allow_pickle=False)
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def save(obj, f):
    """Save ``obj`` (a state dict, a checkpoint dict, a tensor, ...) to the path ``f``.

    The file is an ``.npz`` that ``tg.load`` (or ``numpy.load``) reads without pickle.
    It is written to a temporary file next to ``f`` and renamed into place, so ``f`` is
    either the old file or the complete new one, never half of one. ``f`` may also be
    a writable binary file object (written directly).
    """
    encoder = _Encoder()
    root = encoder.encode(obj)
    text = json.dumps({"format": FORMAT, "version": VERSION, "root": root},
                      separators=(",", ":"))
    header = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if hasattr(f, "write"):
        _write_zip(f, header, encoder.arrays)
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"tg.save: the directory {directory!r} does not exist; create "
                                "it first (os.makedirs(..., exist_ok=True)).")
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp", prefix=os.path.basename(
        _temp_prefix(path)) + f"{os.getpid()}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_zip(handle, header, encoder.arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
    _remove_stale_temporaries(path)


def _temp_prefix(path):
    """Temporary files of ``path`` are ``.<name>.<pid of the writer>.<random>.tmp``."""
    return os.path.join(os.path.dirname(os.path.abspath(path)),
                        "." + os.path.basename(path) + ".")


def _remove_stale_temporaries(path):
    """Delete the temporary files of ``path`` left by writers that were killed
    (their process no longer runs); a live writer's file is left alone."""
    prefix = _temp_prefix(path)
    for tmp in glob.glob(glob.escape(prefix) + "*.tmp"):
        pid = tmp[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or an unusual pid): not ours to judge
    return True


def _file_mode(path):
    """The target's mode if it exists, else what a new file gets (0o666 minus umask)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- loading ---------------------------------------------------------------------------------

# What a damaged or crafted file can make the zip and JSON readers raise; each
# becomes a CheckpointError. (FileNotFoundError on opening, and the RuntimeError
# for CUDA tensors without CUDA, are raised outside these reads.)
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError,
           IndexError, TypeError, OverflowError, NotImplementedError, RecursionError,
           UnicodeDecodeError)
_ZIP_MAGIC = b"PK"
_NPY_MAGIC = b"\x93NUMPY"


def _not_ours(path, why):
    return CheckpointError(f"tg.load: {path} is not a tinygrad_opt checkpoint ({why}); load only "
                           "files written by tg.save.")


def _pickled(path, what):
    return _not_ours(path, f"{what} holds pickled data, which is refused since unpickling can "
                           "run arbitrary code")


def _kind_error(path, start):
    """The error for a file whose first bytes are not a zip archive's, or None."""
    if start.startswith(_ZIP_MAGIC):
        return None
    if not start:
        return _not_ours(path, "it is empty")
    if start.startswith(_NPY_MAGIC):
        return _not_ours(path, "it is a single .npy array, not an .npz archive")
    if len(start) >= 2 and start[0] == 0x80 and 2 <= start[1] <= 5:  # pickle protocol 2-5
        return _pickled(path, "it")
    return _not_ours(path, "it is not an .npz (zip) file")


class _Reader:
    """Reads entries and decodes the structure of one opened archive."""

    def __init__(self, archive, path, map_location):
        self.archive = archive
        self.names = set(archive.namelist())
        self.path = path
        self.map_location = map_location
        self.memo = {}

    def array(self, name):
        """The array of entry ``name``, its declared size checked before allocating."""
        if not isinstance(name, str) or name + ".npy" not in self.names:
            raise _not_ours(self.path, f"the entry {name!r} it refers to is missing")
        info = self.archive.getinfo(name + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _not_ours(self.path, f"the entry {name!r} is compressed, which tg.save never "
                                       "does")
        try:
            with self.archive.open(info) as entry:
                return self._read_npy(name, entry, info.file_size)
        except CheckpointError:
            raise
        except (*_DAMAGE, RuntimeError) as error:  # RuntimeError: zipfile's "encrypted"
            raise _not_ours(self.path, f"the entry {name!r} is damaged: {error}") from error

    def _read_npy(self, name, entry, stored):
        version = np.lib.format.read_magic(entry)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(entry)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(entry)
        else:
            raise _not_ours(self.path, f"the entry {name!r} has .npy format {version}")
        if dtype.hasobject:
            raise _pickled(self.path, f"the entry {name!r}")
        declared = math.prod(shape) * dtype.itemsize
        holds = stored - entry.tell()
        if declared != holds or any(n < 0 for n in shape):
            raise _not_ours(self.path, f"the entry {name!r} declares shape {shape} of {dtype} "
                                       f"({declared} bytes) but holds {holds} bytes")
        data = bytearray(declared)  # writeable, and only as large as the file allows
        view, done = memoryview(data), 0
        while done < declared:
            n = entry.readinto(view[done:])
            if not n:
                raise _not_ours(self.path, f"the entry {name!r} is shorter than its header says")
            done += n
        array = np.frombuffer(data, dtype=dtype)
        return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)

    def target_device(self, saved):
        where = self.map_location
        if where is None:
            device = saved
        elif isinstance(where, dict):
            device = where.get(saved, saved)
        else:
            device = where
        if not isinstance(device, str):
            raise _not_ours(self.path, f"a tensor's device is {device!r}, not a name")
        try:
            device = backend.normalize_device(device)
        except ValueError:
            raise _not_ours(self.path, f"a tensor is on the unknown device {device!r}") from None
        if device.startswith("cuda"):
            if not cuda.is_available():
                raise RuntimeError(f"tg.load: {self.path} holds tensors saved on {saved}, but "
                                   "CUDA is not available here; pass map_location='cpu' to "
                                   "load them on the CPU.")
        return device

    def decode(self, node, depth=0):
        if depth > MAX_DEPTH:
            raise self.too_deep()
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            raise _not_ours(self.path, "its structure has an untagged list")
        if not isinstance(node, dict) or "t" not in node:
            raise _not_ours(self.path, "its structure is malformed")
        tag = node["t"]
        if tag in ("dict", "odict"):
            cls = OrderedDict if tag == "odict" else dict
            return cls(self.decode_item(item, depth) for item in self.children(node))
        if tag in ("list", "tuple"):
            values = [self.decode(v, depth + 1) for v in self.children(node)]
            return values if tag == "list" else tuple(values)
        if tag == "scalar":
            array = self.array(node.get("a"))
            if array.ndim != 0:
                raise _not_ours(self.path, f"a 'scalar' entry holds an array of shape "
                                           f"{array.shape}")
            return array[()]
        if tag == "bytes":
            array = self.array(node.get("a"))
            if array.dtype != np.uint8 or array.ndim != 1:
                raise _not_ours(self.path, "a 'bytes' entry is not a 1-D uint8 array")
            return array.tobytes()
        if tag in ("tensor", "ndarray", "device_array"):
            return self.array_node(tag, node)
        raise _not_ours(self.path, f"it uses the unknown entry type {tag!r}")

    def too_deep(self):
        return _not_ours(self.path, f"its structure is nested more than {MAX_DEPTH} levels deep")

    def children(self, node):
        values = node.get("v")
        if not isinstance(values, list):
            raise _not_ours(self.path, f"a {node['t']!r} entry has no list of values")
        return values

    def decode_item(self, item, depth):
        if not isinstance(item, list) or len(item) != 2:
            size = len(item) if isinstance(item, list) else type(item).__name__
            raise _not_ours(self.path, f"a dict entry has {size} elements instead of "
                                       "[key, value]")
        key = self.decode(item[0], depth + 1)
        if isinstance(key, (list, dict)):
            raise _not_ours(self.path, "a dict key is not hashable")
        return key, self.decode(item[1], depth + 1)

    def array_node(self, tag, node):
        name = node.get("a")
        key = (tag, name if isinstance(name, str) else None)
        if key in self.memo:
            return self.memo[key]
        array = self.array(name)
        if tag == "ndarray":
            value = array
        elif tag == "device_array":
            device = self.target_device(node.get("device", "cpu"))
            value = array if device == "cpu" else backend.transfer(array, device)
        else:
            value = self.tensor(array, node)
        self.memo[key] = value
        return value

    def tensor(self, array, node):
        device = self.target_device(node.get("device", "cpu"))
        if device != "cpu":
            array = backend.transfer(array, device)
        requires_grad = bool(node.get("requires_grad", False))
        if node.get("parameter"):
            return Parameter(array, requires_grad=requires_grad)
        return Tensor(array, requires_grad=requires_grad)

    def load(self):
        if HEADER + ".npy" not in self.names:
            if any(name.endswith(".pkl") for name in self.names):
                raise _pickled(self.path, "it is a torch.save archive that")
            raise _not_ours(self.path, f"it is an .npz archive without the {HEADER} entry, "
                                       "written by numpy.savez or another program")
        raw = self.array(HEADER)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise _not_ours(self.path, "its header is not a 1-D uint8 array")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except RecursionError:
            raise self.too_deep() from None
        except ValueError as error:
            raise _not_ours(self.path, f"its header is damaged: {error}") from error
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise _not_ours(self.path, "its header is not a tinygrad_opt header")
        version = meta.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise CheckpointError(f"tg.load: {self.path} was written by a newer tinygrad_opt "
                                  f"(checkpoint format {version}, this version reads up to "
                                  f"{VERSION}); upgrade tinygrad_opt to load it.")
        try:
            return self.decode(meta.get("root"))
        except CheckpointError:
            raise
        except _DAMAGE as error:  # e.g. a Tensor of an unsupported dtype
            raise _not_ours(self.path, f"its structure is damaged: {error!r}") from error


@contextlib.contextmanager
def _binary(f):
    """``f`` opened for reading (a path), or the file object itself (left open)."""
    if hasattr(f, "read"):
        yield f
    else:
        with open(f, "rb") as handle:
            yield handle


def load(f, map_location=None, weights_only=True):
    """Load an object saved with :func:`save`.

    Args:
        f: a path (or a readable, seekable binary file object).
        map_location: where tensors go: None (the device they were saved from),
            ``'cpu'``, ``'cuda'``/``'cuda:N'``, or a dict {saved device: device}.
            NumPy arrays stay NumPy arrays.
        weights_only: accepted for PyTorch's signature; loading never unpickles, so it
            is always "weights only".

    Raises:
        CheckpointError (a ValueError): the file is not an intact tinygrad_opt
            checkpoint (another format, damaged, truncated or crafted).
        FileNotFoundError: there is no such file.
        RuntimeError: it holds CUDA tensors and CUDA is not available (pass
            ``map_location='cpu'``).
    """
    path = repr(os.fspath(f)) if not hasattr(f, "read") else "the file object"
    if not hasattr(f, "read") and os.path.isdir(f):
        raise IsADirectoryError(f"tg.load: {path} is a directory, not a checkpoint file.")
    with _binary(f) as handle:
        start = handle.tell()
        error = _kind_error(path, handle.read(8))
        if error is not None:
            raise error
        handle.seek(start)
        try:
            archive = zipfile.ZipFile(handle)
        except (*_DAMAGE, RuntimeError) as error:  # RuntimeError: zipfile's "encrypted"
            raise _not_ours(path, f"it is a damaged zip file: {error}") from error
        with archive:
            return _Reader(archive, path, map_location).load()


__all__ = ["CheckpointError", "load", "save"]
