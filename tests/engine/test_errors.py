"""Bad input gets one sentence naming the operation and the shapes, dtypes or
devices involved (and, where there is one, the fix). One table: the call, the
exception type, and fragments the message must contain."""

import numpy as np
import pytest

import tinygrad_opt as tg


def _freed_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    y.backward()


def _unused_input():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([[1.0]], requires_grad=True)
    tg.grad((x * 2).sum(), [x, w])


ERRORS = {
    "matmul shapes": (lambda: tg.randn(2, 3) @ tg.randn(4, 5), ValueError,
                      ["matmul", "(2, 3)", "(4, 5)", "(3)", "(4)"]),
    "matmul vector": (lambda: tg.randn(2, 3) @ tg.randn(5), ValueError,
                      ["matmul", "(2, 3)", "(5,)"]),
    "matmul batch": (lambda: tg.randn(2, 2, 3) @ tg.randn(3, 3, 4), ValueError,
                     ["matmul", "(2, 2, 3)", "(3, 3, 4)", "batch"]),
    "broadcast add": (lambda: tg.randn(2, 3) + tg.randn(4, 5), ValueError,
                      ["add", "(2, 3)", "(4, 5)", "broadcast"]),
    "broadcast mul": (lambda: tg.randn(3) * tg.randn(2), ValueError,
                      ["mul", "(3,)", "(2,)", "broadcast"]),
    "broadcast where": (lambda: tg.where(tg.tensor([True, False]), tg.randn(3), 0.0), ValueError,
                        ["where", "(2,)", "(3,)", "broadcast"]),
    "non-scalar backward": (lambda: (tg.randn(2, 3, requires_grad=True) * 2).backward(),
                            RuntimeError, ["backward", "(2, 3)", "gradient="]),
    "gradient shape": (lambda: (tg.randn(3, requires_grad=True) * 2).backward(tg.randn(2)),
                       RuntimeError, ["backward", "(2,)", "(3,)"]),
    "backward without graph": (lambda: tg.randn(3).sum().backward(), RuntimeError,
                               ["backward", "requires_grad=True"]),
    "unused input": (_unused_input, RuntimeError, ["grad", "input 1", "(1, 1)",
                                                   "allow_unused=True"]),
    "freed graph": (_freed_graph, RuntimeError, ["Mul", "retain_graph=True"]),
    "index out of range": (lambda: tg.randn(3)[5], IndexError, ["getitem", "5", "(3,)"]),
    "index array out of range": (lambda: tg.randn(3, 2)[tg.tensor([0, 7])], IndexError,
                                 ["getitem", "7", "(3, 2)"]),
    "too many indices": (lambda: tg.randn(3)[:, 1], IndexError, ["getitem", "(3,)"]),
    "dim out of range": (lambda: tg.randn(3).sum(3), IndexError, ["dimension 3", "1 dimension"]),
    "unknown dtype": (lambda: tg.zeros(2, dtype="flot32"), TypeError,
                      ["unknown dtype", "'flot32'", "float32"]),
    "unsupported dtype": (lambda: tg.tensor([1.0], dtype=np.complex64), TypeError,
                          ["unknown dtype", "complex64"]),
    "unknown device": (lambda: tg.tensor([1.0], device="tpu"), ValueError,
                       ["unknown device", "'tpu'", "cpu"]),
    "unknown device in to": (lambda: tg.tensor([1.0]).to("gpu"), ValueError,
                             ["unknown device", "'gpu'"]),
    "reshape": (lambda: tg.randn(3).reshape(4), ValueError, ["reshape", "(3,)", "(4,)"]),
    "expand": (lambda: tg.randn(3).expand(2, 4), ValueError, ["expand", "(3,)", "(2, 4)"]),
    "cat": (lambda: tg.cat([tg.randn(2, 3), tg.randn(3, 2)]), ValueError,
            ["cat", "(2, 3)", "(3, 2)", "dim 0"]),
    "stack": (lambda: tg.stack([tg.randn(2, 3), tg.randn(3, 2)]), ValueError,
              ["stack", "(2, 3)", "(3, 2)"]),
    "permute": (lambda: tg.randn(3, 2).permute(0, 0), ValueError, ["permute", "(0, 0)", "(3, 2)"]),
    "int requires grad": (lambda: tg.tensor([1, 2], requires_grad=True), TypeError,
                          ["requires_grad", "int64"]),
    "item of many": (lambda: tg.randn(3).item(), ValueError, ["item", "(3,)"]),
    "in-place on leaf": (lambda: tg.randn(3, requires_grad=True).__iadd__(1), RuntimeError,
                         ["in-place", "no_grad"]),
    "gradcheck float32": (lambda: tg.autograd.gradcheck(tg.exp, tg.randn(2, requires_grad=True)),
                          TypeError, ["gradcheck", "float32", "float64"]),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_is_one_clear_sentence(name):
    call, kind, fragments = ERRORS[name]
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert "\n" not in message
    assert message.rstrip().endswith(".")
