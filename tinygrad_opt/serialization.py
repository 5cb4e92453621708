"""``tg.save`` / ``tg.load``: checkpoints as ``.npz`` files that never run code.

A checkpoint is a zip of ``.npy`` arrays, as ``numpy.savez`` writes: one entry per
array (``a0``, ``a1``, ...) and one entry, ``__tinygrad_opt__``, holding the
structure as JSON -- nested dicts (any hashable keys: optimizer state is keyed by
int), OrderedDicts, lists, tuples, Tensors (dtype, device, requires_grad, Parameter),
NumPy arrays and scalars, ints, floats (nan and inf too), bools, strings, bytes and
None. Everything comes back exactly: same types, dtypes and values; a tensor saved
twice in one object comes back as one tensor.

Loading reads the arrays with ``allow_pickle=False`` and parses JSON, so a file can
never execute code; a file that is not ours gets one clear error. Saving writes a
temporary file in the same directory, flushes it to disk and renames it over the
target (``os.replace``), so a crash or an error mid-way never leaves a partial
checkpoint behind.
"""

import json
import os
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np

from . import backend

HEADER = "__tinygrad_opt__"
FORMAT = "tinygrad_opt checkpoint"
VERSION = 1


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

    def encode(self, obj, where="obj"):
        from .tensor import Tensor

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
            from .nn.module import Parameter

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
                              self.encode(value, f"{where}[{key!r}]")])
            return {"t": tag, "v": items}
        if isinstance(obj, (list, tuple)):
            tag = "list" if isinstance(obj, list) else "tuple"
            return {"t": tag, "v": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
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
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
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


def _not_ours(path, why):
    return CheckpointError(f"tg.load: {path} is not a tinygrad_opt checkpoint ({why}); load only "
                           "files written by tg.save (files from torch.save or pickle are "
                           "refused, since unpickling can run arbitrary code).")


class _Decoder:
    def __init__(self, archive, files, path, map_location):
        self.archive = archive
        self.archive_files = files
        self.path = path
        self.map_location = map_location
        self.memo = {}

    def array(self, name):
        if not isinstance(name, str) or name + ".npy" not in self.archive_files:
            raise _not_ours(self.path, f"the entry {name!r} it refers to is missing")
        try:
            return self.archive[name]
        except ValueError as error:
            raise _not_ours(self.path, f"the entry {name!r} holds pickled data, which is "
                                       f"refused") from error

    def target_device(self, saved):
        where = self.map_location
        if where is None:
            device = saved
        elif isinstance(where, dict):
            device = where.get(saved, saved)
        else:
            device = where
        device = backend.normalize_device(device)
        if device.startswith("cuda"):
            from . import cuda

            if not cuda.is_available():
                raise RuntimeError(f"tg.load: {self.path} holds tensors saved on {saved}, but "
                                   "CUDA is not available here; pass map_location='cpu' to "
                                   "load them on the CPU.")
        return device

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            raise _not_ours(self.path, "its structure has an untagged list")
        if not isinstance(node, dict) or "t" not in node:
            raise _not_ours(self.path, "its structure is malformed")
        tag = node["t"]
        if tag in ("dict", "odict"):
            cls = OrderedDict if tag == "odict" else dict
            return cls((self.decode_key(k), self.decode(v)) for k, v in node["v"])
        if tag == "list":
            return [self.decode(v) for v in node["v"]]
        if tag == "tuple":
            return tuple(self.decode(v) for v in node["v"])
        if tag == "scalar":
            return self.array(node["a"])[()]
        if tag == "bytes":
            return self.array(node["a"]).tobytes()
        if tag in ("tensor", "ndarray", "device_array"):
            name = node["a"]
            key = (tag, name)
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
        raise _not_ours(self.path, f"it uses the unknown entry type {tag!r}")

    def decode_key(self, node):
        key = self.decode(node)
        if isinstance(key, (list, dict)):
            raise _not_ours(self.path, "a dict key is not hashable")
        return key

    def tensor(self, array, node):
        from .tensor import Tensor

        device = self.target_device(node.get("device", "cpu"))
        if device != "cpu":
            array = backend.transfer(array, device)
        requires_grad = bool(node.get("requires_grad", False))
        if node.get("parameter"):
            from .nn.module import Parameter

            return Parameter(array, requires_grad=requires_grad)
        return Tensor(array, requires_grad=requires_grad)


def load(f, map_location=None, weights_only=True):
    """Load an object saved with :func:`save`.

    Args:
        f: a path (or a readable binary file object).
        map_location: where tensors go: None (the device they were saved from),
            ``'cpu'``, ``'cuda'``/``'cuda:N'``, or a dict {saved device: device}.
            NumPy arrays stay NumPy arrays.
        weights_only: accepted for PyTorch's signature; loading never unpickles, so it
            is always "weights only".

    Raises:
        CheckpointError (a ValueError): the file is not a tinygrad_opt checkpoint.
        FileNotFoundError: there is no such file.
    """
    path = repr(os.fspath(f)) if not hasattr(f, "read") else "the file object"
    if not hasattr(f, "read") and os.path.isdir(f):
        raise IsADirectoryError(f"tg.load: {path} is a directory, not a checkpoint file.")
    try:
        archive = np.load(f, allow_pickle=False)
    except (FileNotFoundError, PermissionError):
        raise
    except ValueError as error:
        if "pickle" in str(error):
            raise _not_ours(path, "it is not an .npz archive and would need pickle to read"
                            ) from error
        raise _not_ours(path, f"numpy cannot read it: {error}") from error
    except (EOFError, OSError, zipfile.BadZipFile) as error:
        raise _not_ours(path, f"it is empty or damaged: {error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _not_ours(path, "it is a single .npy array, not an .npz archive")
    with archive:
        files = set(archive.zip.namelist())
        if HEADER + ".npy" not in files:
            raise _not_ours(path, f"it is an .npz archive without the {HEADER} entry, written "
                                  "by numpy.savez or another program")
        try:
            raw = archive[HEADER]
            meta = json.loads(bytes(raw.astype(np.uint8).tobytes()).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, TypeError, zipfile.BadZipFile) as error:
            raise _not_ours(path, f"its header is damaged: {error}") from error
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise _not_ours(path, "its header is not a tinygrad_opt header")
        version = meta.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise CheckpointError(f"tg.load: {path} was written by a newer tinygrad_opt "
                                  f"(checkpoint format {version}, this version reads up to "
                                  f"{VERSION}); upgrade tinygrad_opt to load it.")
        decoder = _Decoder(archive, files, path, map_location)
        try:
            return decoder.decode(meta.get("root"))
        except (KeyError, TypeError, RecursionError, zipfile.BadZipFile, EOFError) as error:
            raise _not_ours(path, f"its structure is damaged: {error!r}") from error


__all__ = ["CheckpointError", "load", "save"]
