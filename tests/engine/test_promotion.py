"""Type promotion is PyTorch's ``torch.result_type``: dimensioned tensors win over 0-d
tensors within a category (bool < integer < floating), Python numbers never widen a
tensor of their category, float16 with integers stays float16, and integer inputs to
floating ops give the default float dtype. A literal table keeps the rules checked
without torch; with torch installed every row is also compared with it."""

import numpy as np
import pytest

import tinygrad_opt as tg

# (left, right) -> the result dtype. An operand is ("nd", dtype): shape (2,),
# ("0d", dtype): a 0-d tensor, or a Python number.
TABLE = [
    # dimensioned with dimensioned: the higher category wins whole, else the wider
    (("nd", "bool"), ("nd", "int32"), "int32"),
    (("nd", "int32"), ("nd", "int64"), "int64"),
    (("nd", "float16"), ("nd", "int64"), "float16"),
    (("nd", "float16"), ("nd", "int32"), "float16"),
    (("nd", "float32"), ("nd", "float64"), "float64"),
    (("nd", "float16"), ("nd", "float32"), "float32"),
    (("nd", "bool"), ("nd", "float16"), "float16"),
    (("nd", "int64"), ("nd", "float32"), "float32"),
    (("nd", "bool"), ("nd", "bool"), "bool"),
    # dimensioned with 0-d: the 0-d counts only through a higher category
    (("nd", "float32"), ("0d", "float64"), "float32"),
    (("nd", "float16"), ("0d", "float64"), "float16"),
    (("nd", "int32"), ("0d", "int64"), "int32"),
    (("nd", "int32"), ("0d", "float64"), "float64"),
    (("nd", "int64"), ("0d", "float16"), "float16"),
    (("nd", "bool"), ("0d", "int64"), "int64"),
    (("nd", "bool"), ("0d", "float64"), "float64"),
    (("nd", "int64"), ("0d", "bool"), "int64"),
    (("nd", "float64"), ("0d", "float32"), "float64"),
    (("nd", "int32"), ("0d", "float32"), "float32"),
    (("nd", "float16"), ("0d", "int64"), "float16"),
    # 0-d with 0-d: as dimensioned with dimensioned
    (("0d", "int32"), ("0d", "int64"), "int64"),
    (("0d", "float32"), ("0d", "float64"), "float64"),
    (("0d", "float16"), ("0d", "int64"), "float16"),
    (("0d", "bool"), ("0d", "float32"), "float32"),
    # Python numbers: their kind counts, never their size
    (("nd", "int32"), 2, "int32"),
    (("nd", "int32"), 2.5, "float32"),
    (("nd", "float16"), 2.5, "float16"),
    (("nd", "bool"), 2, "int64"),
    (("nd", "bool"), True, "bool"),
    (("nd", "bool"), 2.5, "float32"),
    (("0d", "int32"), 2.5, "float32"),
    (("0d", "float64"), 2.5, "float64"),
    (("0d", "int64"), True, "int64"),
    (("nd", "float64"), 2, "float64"),
    (("0d", "bool"), 2, "int64"),
    (("nd", "float32"), True, "float32"),
    (("0d", "float16"), 2, "float16"),
    (("0d", "int32"), ("nd", "float16"), "float16"),
]
IDS = [f"{left}-{right}" for left, right, _ in TABLE]


def ours(operand):
    if not isinstance(operand, tuple):
        return operand
    kind, dtype = operand
    return tg.tensor([1, 0] if kind == "nd" else 1, dtype=dtype)


def theirs(torch, operand):
    if not isinstance(operand, tuple):
        return operand
    kind, dtype = operand
    return torch.tensor([1, 0] if kind == "nd" else 1, dtype=getattr(torch, dtype))


@pytest.mark.parametrize("left, right, expected", TABLE, ids=IDS)
def test_result_type_table(left, right, expected):
    a, b = ours(left), ours(right)
    assert tg.result_type(a, b) == np.dtype(expected)
    # the ops follow it, whichever side the tensor is on
    assert (a + b).dtype == np.dtype(expected)
    assert (b * a).dtype == np.dtype(expected)
    if isinstance(a, tg.Tensor) and isinstance(b, tg.Tensor):
        assert tg.where(tg.tensor([True, False]), a, b).dtype == np.dtype(expected)


@pytest.mark.parametrize("left, right, expected", TABLE, ids=IDS)
def test_result_type_table_is_torchs(left, right, expected):
    torch = pytest.importorskip("torch")
    a, b = theirs(torch, left), theirs(torch, right)
    if not isinstance(a, torch.Tensor):
        a, b = b, a  # torch.result_type wants a tensor first
    assert str(torch.result_type(a, b)) == f"torch.{expected}"
    assert str((a + b).dtype) == f"torch.{expected}"


def test_promote_types_is_torchs():
    names = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"]
    expected = {("int8", "uint8"): "int16", ("float16", "int64"): "float16",
                ("bool", "uint8"): "uint8", ("float32", "int64"): "float32"}
    for (a, b), result in expected.items():
        assert tg.promote_types(a, b) == np.dtype(result)
    torch = pytest.importorskip("torch")
    for a in names:
        for b in names:
            want = str(torch.promote_types(getattr(torch, a), getattr(torch, b)))
            assert f"torch.{tg.promote_types(a, b)}" == want, (a, b)


def test_python_float_follows_the_default_dtype():
    ints = tg.tensor([1, 2], dtype="int32")
    try:
        tg.set_default_dtype("float64")
        assert (ints * 0.5).dtype == np.float64 and ints.exp().dtype == np.float64
        assert (tg.tensor([1.0], dtype="float32") * 0.5).dtype == np.float32
    finally:
        tg.set_default_dtype("float32")


@pytest.mark.parametrize("value, dtype", [(np.float64(1.5), "float64"),
                                          (np.float32(1.5), "float32"),
                                          (np.float16(1.5), "float16"),
                                          (np.int32(3), "int32"), (np.bool_(True), "bool"),
                                          (1.5, "float32"), (3, "int64"), (True, "bool")])
def test_tensor_of_a_scalar_keeps_a_numpy_scalars_dtype(value, dtype):
    t = tg.tensor(value)
    assert t.dtype == np.dtype(dtype) and t.shape == ()
    t.zero_()  # a 0-d array of its own
    assert t.item() == 0
    torch = pytest.importorskip("torch")
    assert str(torch.tensor(value).dtype) == f"torch.{dtype}"


def test_mixed_float_matmul_is_refused_as_in_torch():
    w = tg.randn(3, 2)
    x64 = np.ones((4, 2))  # NumPy's default: float64
    with pytest.raises(RuntimeError, match=r"matmul: .*float64 and float32.*same dtype.*convert"):
        tg.tensor(x64) @ w.T
    with pytest.raises(RuntimeError, match=r"linear: .*float64, float32 and float32"):
        tg.nn.Linear(2, 3)(tg.tensor(x64))
    # the fix the message names works, and same-dtype integers multiply as in torch
    assert (tg.tensor(x64, dtype="float32") @ w.T).dtype == np.float32
    assert (tg.tensor([[1, 2]]) @ tg.tensor([[3], [4]])).tolist() == [[11]]
