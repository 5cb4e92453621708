"""tg.save / tg.load: exact round trips, atomic writes, and refusing files that are not ours."""

import io
import json
import math
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_opt as tg
from tinygrad_opt import nn, optim
from tinygrad_opt.serialization import CheckpointError


def _same(a, b):
    """Exact equality of nested structures, including types and dtypes."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            assert type(k) is type([kk for kk in b if kk == k][0])
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, tg.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
        assert a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_nested_structures_round_trip_exactly(tmp_path):
    obj = {
        "tensors": [tg.randn(2, 3), tg.tensor([1, 2, 3]), tg.zeros(0, 4, dtype="float64"),
                    tg.tensor(3.5, dtype="float16"), tg.tensor([True, False]),
                    nn.Parameter(tg.ones(2, dtype="float64"))],
        "arrays": (np.arange(6, dtype=np.int32).reshape(2, 3), np.asfortranarray(np.eye(3)),
                   np.array(["a", "bé"]), np.float32(1.5), np.int64(-7), np.bool_(True)),
        "numbers": [0, -1, 2 ** 80, 1.0, 0.1, -0.0, math.inf, -math.inf, math.nan, 1e-308],
        "misc": [True, False, None, "", "ünïcode ✓", b"\x00\xffbytes", [], {}, ()],
        "int_keys": {0: "a", 1: {"b": 2}, -5: None},
        "odd_keys": {(1, "x"): 1, 2.5: 2, None: 3, True: 4, "s": 5},
        "ordered": OrderedDict([("z", 1), ("a", 2)]),
    }
    path = tmp_path / "nested.npz"
    tg.save(obj, path)
    back = tg.load(path)
    _same(obj, back)
    assert isinstance(back["tensors"][5], nn.Parameter) and back["tensors"][5].requires_grad
    assert back["arrays"][1].flags.f_contiguous
    assert back["tensors"][0].device == "cpu"


def test_a_tensor_saved_twice_comes_back_as_one(tmp_path):
    t = tg.randn(3)
    back = tg.load(_saved(tmp_path, {"a": t, "b": [t]}))
    assert back["a"] is back["b"][0]


def _saved(tmp_path, obj, name="c.npz"):
    path = os.path.join(tmp_path, name)
    tg.save(obj, path)
    return path


def test_model_optimizer_checkpoint_resumes_exactly(tmp_path):
    X, y = tg.randn(32, 2), tg.randint(0, 3, (32,))

    def make():
        tg.manual_seed(1)
        model = nn.MLP([2, 8, 3])
        return model, optim.Adam(model.parameters(), lr=0.01, amsgrad=True)

    def steps(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X), y).backward()
            opt.step()

    model, opt = make()
    steps(model, opt, 3)
    path = _saved(tmp_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "epoch": 3})
    steps(model, opt, 4)
    expected = model.state_dict()

    model2, opt2 = make()
    state = tg.load(path)
    assert type(state["model"]) is OrderedDict
    assert list(state["optimizer"]["state"]) == [0, 1, 2, 3]
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    model2.load_state_dict(state["model"])
    opt2.load_state_dict(state["optimizer"])
    steps(model2, opt2, 4)
    for k, v in model2.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), expected[k].numpy())


def test_files_are_plain_npz_and_file_objects_work(tmp_path):
    path = _saved(tmp_path, {"w": tg.ones(2)})
    with np.load(path, allow_pickle=False) as archive:
        assert "__tinygrad_opt__" in archive.files
    buffer = io.BytesIO()
    tg.save([tg.ones(2), 3], buffer)
    buffer.seek(0)
    back = tg.load(buffer)
    assert back[1] == 3 and back[0].numpy().tolist() == [1.0, 1.0]


def test_failed_save_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    path = _saved(tmp_path, {"version": 1})
    with pytest.raises(TypeError, match=r"cannot save obj\['bad'\], a function"):
        tg.save({"bad": lambda: 0}, path)
    with pytest.raises(TypeError, match=r"a MLP \(save its obj.state_dict\(\) instead\)"):
        tg.save(nn.MLP([2, 2]), path)
    with pytest.raises(TypeError, match="object array"):
        tg.save({"obj": np.array([{}], dtype=object)}, path)

    calls = []
    real = np.lib.format.write_array

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # fail in the middle of writing the archive
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing)
    with pytest.raises(OSError, match="disk full"):
        tg.save({"version": 2, "a": np.ones(3), "b": np.ones(4), "c": np.ones(5)}, path)
    calls.clear()
    with pytest.raises(OSError, match="disk full"):
        tg.save({"a": np.ones(3), "b": np.ones(4)}, os.path.join(tmp_path, "new.npz"))
    monkeypatch.undo()
    assert tg.load(path) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temporary files, no new.npz
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tg.save({}, os.path.join(tmp_path, "missing_dir", "x.npz"))


def test_files_that_are_not_ours_get_one_sentence(tmp_path):
    def refused(path, *fragments):
        with pytest.raises(CheckpointError) as info:
            tg.load(path)
        message = str(info.value)
        assert message.startswith("tg.load: ") and "\n" not in message
        assert "not a tinygrad_opt checkpoint" in message
        for fragment in fragments:
            assert fragment in message
        return message

    plain = os.path.join(tmp_path, "plain.npz")
    np.savez(plain, x=np.ones(3))
    refused(plain, "numpy.savez")
    pickled = os.path.join(tmp_path, "state.pkl")
    with open(pickled, "wb") as handle:
        pickle.dump({"w": np.ones(2)}, handle)
    refused(pickled, "pickle")
    npy = os.path.join(tmp_path, "one.npy")
    np.save(npy, np.ones(2))
    refused(npy, ".npy")
    empty = os.path.join(tmp_path, "empty.npz")
    open(empty, "wb").close()
    refused(empty)
    text = os.path.join(tmp_path, "text.npz")
    with open(text, "w") as handle:
        handle.write("hello")
    refused(text)
    truncated = os.path.join(tmp_path, "truncated.npz")
    good = _saved(tmp_path, {"w": tg.ones(1000)}, "good.npz")
    with open(good, "rb") as handle, open(truncated, "wb") as out:
        out.write(handle.read()[:3000])
    refused(truncated)
    # our header, but an entry that holds a pickled object array
    sneaky = os.path.join(tmp_path, "sneaky.npz")
    header = b'{"format":"tinygrad_opt checkpoint","version":1,"root":{"t":"ndarray","a":"a0"}}'
    np.savez(sneaky, __tinygrad_opt__=np.frombuffer(header, np.uint8),
             a0=np.array([{"evil": 1}], dtype=object))
    refused(sneaky, "pickled")
    future = os.path.join(tmp_path, "future.npz")
    header = b'{"format":"tinygrad_opt checkpoint","version":99,"root":null}'
    np.savez(future, __tinygrad_opt__=np.frombuffer(header, np.uint8))
    with pytest.raises(CheckpointError, match="newer tinygrad_opt"):
        tg.load(future)
    with pytest.raises(FileNotFoundError):
        tg.load(os.path.join(tmp_path, "nothing.npz"))


def test_torch_save_files_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = os.path.join(tmp_path, "model.pt")
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match="without the __tinygrad_opt__ entry|pickle"):
        tg.load(path)


def test_map_location(tmp_path):
    path = _saved(tmp_path, {"w": tg.ones(2), "n": np.ones(2)})
    back = tg.load(path, map_location="cpu")
    assert back["w"].device == "cpu" and isinstance(back["n"], np.ndarray)
    back = tg.load(path, map_location={"cuda:0": "cpu"})
    assert back["w"].device == "cpu"
    if not tg.cuda.is_available():
        with pytest.raises(RuntimeError, match="map_location='cpu'"):
            tg.load(path, map_location="cuda")


@pytest.mark.gpu
def test_gpu_tensors_round_trip(tmp_path):
    model = nn.MLP([2, 4, 2]).to("cuda")
    path = _saved(tmp_path, model.state_dict())
    on_gpu = tg.load(path)
    assert all(v.device == "cuda:0" for v in on_gpu.values())
    on_cpu = tg.load(path, map_location="cpu")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(on_cpu[k].numpy(), v.numpy())
        assert on_cpu[k].device == "cpu"


# -- crafted and damaged files -------------------------------------------------------

def _npy_bytes(header, data):
    """A .npy entry from an explicit header dict and raw data bytes (which may disagree)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + data


def _crafted(tmp_path, root, entries=(), name="crafted.npz"):
    """A checkpoint with our header around ``root`` (a structure, or its JSON text) and
    the given raw .npy entries."""
    root = root if isinstance(root, str) else json.dumps(root)
    text = f'{{"format": "tinygrad_opt checkpoint", "version": 1, "root": {root}}}'
    path = os.path.join(tmp_path, name)
    with zipfile.ZipFile(path, "w") as archive:
        header = io.BytesIO()
        np.save(header, np.frombuffer(text.encode(), np.uint8))
        archive.writestr("__tinygrad_opt__.npy", header.getvalue())
        for entry, raw in dict(entries).items():
            archive.writestr(entry + ".npy", raw)
    return path


def _vector_entry(n=3):
    buffer = io.BytesIO()
    np.save(buffer, np.arange(float(n)))
    return buffer.getvalue()


def _deep(levels):
    """The JSON text of lists nested ``levels`` deep (too deep for json.dumps itself)."""
    return '{"t": "list", "v": [' * levels + "null" + "]}" * levels


CRAFTED = [
    ("deeply nested", _deep(5000), {}, "nested more than"),
    ("barely too deep", _deep(150), {}, "nested more than 100 levels"),
    ("3-element dict entry", {"t": "dict", "v": [["k", 1, 2]]}, {}, "3 elements"),
    ("unknown device", {"t": "tensor", "a": "a0", "device": "tpu:0"}, {"a0": _vector_entry()},
     "unknown device 'tpu:0'"),
    ("10^13 elements", {"t": "ndarray", "a": "a0"},
     {"a0": _npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (10 ** 13,)},
                       b"\0" * 16)}, "declares shape (10000000000000,)"),
    ("shorter than its header", {"t": "ndarray", "a": "a0"},
     {"a0": _npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (100,)},
                       b"\0" * 80)}, "(800 bytes) but holds 80 bytes"),
    ("scalar tag on a vector", {"t": "scalar", "a": "a0"}, {"a0": _vector_entry()},
     "'scalar' entry holds an array of shape (3,)"),
    ("missing entry", {"t": "ndarray", "a": "a7"}, {}, "'a7' it refers to is missing"),
    ("values not a list", {"t": "list", "v": 3}, {}, "no list of values"),
    ("unknown tag", {"t": "lambda"}, {}, "unknown entry type 'lambda'"),
    ("device not a name", {"t": "tensor", "a": "a0", "device": 7}, {"a0": _vector_entry()},
     "device is 7"),
]


@pytest.mark.parametrize("root,entries,words", [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_files_raise_checkpoint_error(tmp_path, root, entries, words):
    path = _crafted(tmp_path, root, entries)
    with pytest.raises(CheckpointError) as info:
        tg.load(path)
    message = str(info.value).replace(str(tmp_path), "")
    assert words in message and "\n" not in message and message.startswith("tg.load: ")
    assert "pickle" not in message


def test_only_pickled_data_is_called_pickle(tmp_path):
    text = os.path.join(tmp_path, "notes.txt")
    with open(text, "w") as handle:
        handle.write("just some text\n")
    with pytest.raises(CheckpointError, match=r"not an \.npz \(zip\) file") as info:
        tg.load(text)
    assert "pickle" not in str(info.value).replace(str(tmp_path), "")
    pickled = os.path.join(tmp_path, "state.pkl")
    with open(pickled, "wb") as handle:
        pickle.dump([1, 2], handle, protocol=4)
    with pytest.raises(CheckpointError, match="holds pickled data"):
        tg.load(pickled)


def test_save_refuses_structures_nested_too_deep(tmp_path):
    deep = []
    for _ in range(150):
        deep = [deep]
    loop = []
    loop.append(loop)
    for obj in (deep, loop):
        with pytest.raises(ValueError, match="nested more than 100 levels"):
            tg.save(obj, os.path.join(tmp_path, "deep.npz"))
    assert os.listdir(tmp_path) == []


_GOOD = {"model": {"w": tg.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": tg.tensor(0.5)},
         "opt": {"state": {0: {"step": np.float32(3.0), "m": np.arange(4.0)}},
                 "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0]}]},
         "note": "ok", "raw": b"\x01\x02"}


def _good_bytes():
    buffer = io.BytesIO()
    tg.save(_GOOD, buffer)
    return buffer.getvalue()


GOOD_BYTES = _good_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_checkpoints_load_identically_or_raise_checkpoint_error(data):
    raw = bytearray(GOOD_BYTES)
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[:data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            at = data.draw(st.integers(0, len(raw) - 1), label="at")
            raw[at] ^= data.draw(st.integers(1, 255), label="xor")
    try:
        back = tg.load(io.BytesIO(bytes(raw)))
    except CheckpointError as error:
        assert str(error).startswith("tg.load: ") and "\n" not in str(error)
    else:
        _same(_GOOD, back)


def test_a_save_removes_temporaries_of_killed_writers(tmp_path):
    path = os.path.join(tmp_path, "ck.npz")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = [os.path.join(tmp_path, f".ck.npz.{gone.pid}.{tag}.tmp") for tag in ("x1", "x2")]
    live = os.path.join(tmp_path, f".ck.npz.{os.getpid()}.busy.tmp")  # a writer still running
    other = os.path.join(tmp_path, f".other.npz.{gone.pid}.x3.tmp")    # another path's file
    for name in stale + [live, other]:
        with open(name, "wb") as handle:
            handle.write(b"\0" * 100)
    tg.save({"w": tg.ones(2)}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["ck.npz", os.path.basename(live), os.path.basename(other)])
    assert tg.load(path)["w"].numpy().tolist() == [1.0, 1.0]
