"""Grad mode switches (``set_grad_enabled``, ``no_grad``, ``enable_grad``,
``inference_mode``) as functions, context managers and decorators, as in
PyTorch; and gradients handed to the user own writeable memory."""

import numpy as np
import pytest

import tinygrad_opt as tg

torch = pytest.importorskip("torch")


def test_set_grad_enabled_as_a_function_and_as_a_context_manager():
    for lib in (tg, torch):
        lib.set_grad_enabled(False)
        assert not lib.is_grad_enabled()
        lib.set_grad_enabled(True)
        with lib.set_grad_enabled(False):
            assert not lib.is_grad_enabled()
        assert lib.is_grad_enabled()
        with lib.no_grad(), lib.set_grad_enabled(True):
            assert lib.is_grad_enabled()
        assert lib.is_grad_enabled()


def _decorated_outcomes(lib, name):
    manager = getattr(lib, name)

    @manager
    def bare():
        return lib.is_grad_enabled()

    @manager()
    def called():
        return lib.is_grad_enabled()

    @manager()
    def generator():
        received = yield lib.is_grad_enabled()
        yield (received, lib.is_grad_enabled())

    with lib.set_grad_enabled(name != "enable_grad"):  # start from the other mode
        gen = generator()
        first = next(gen)
        outside = lib.is_grad_enabled()  # the caller's mode between resumptions
        second = gen.send("hi")
        return bare(), called(), first, outside, second, lib.is_grad_enabled()


@pytest.mark.parametrize("name", ["no_grad", "enable_grad", "inference_mode"])
def test_decorators_with_and_without_parentheses_and_on_generators(name):
    assert _decorated_outcomes(tg, name) == _decorated_outcomes(torch, name)


def test_set_grad_enabled_as_a_decorator_restores_the_mode():
    @tg.set_grad_enabled(False)
    def inside():
        return tg.is_grad_enabled()

    assert tg.is_grad_enabled() and not inside() and tg.is_grad_enabled()


def test_inference_mode_false_leaves_grad_mode_alone():
    with tg.no_grad(), tg.inference_mode(False):
        assert not tg.is_grad_enabled()
    with tg.inference_mode(False):
        assert tg.is_grad_enabled()


# -- gradients handed to the user ----------------------------------------------------------


def _owns(g):
    return g.data.flags.writeable and g.data.flags.owndata


def test_backward_with_inputs_does_not_alias_the_callers_gradient():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    g = tg.tensor([1.0, 1.0])
    (a + 0).backward(g, inputs=[a])
    assert _owns(a.grad) and not np.shares_memory(a.grad.data, g.data)


def test_large_reductions_give_writeable_gradients_everywhere():
    x = tg.zeros(20000, requires_grad=True)
    x.sum().backward()
    (g,) = tg.grad(x.sum(), x)
    for grad in (x.grad, g):
        assert _owns(grad)
        grad.data += 1  # as a user may


def test_one_gradient_fanned_out_is_not_shared():
    x, y = (tg.tensor([1.0, 2.0], requires_grad=True) for _ in range(2))
    gx, gy = tg.grad((x + y).sum(), (x, y))
    (x + y).sum().backward()
    assert not np.shares_memory(gx.data, gy.data)
    assert not np.shares_memory(x.grad.data, y.grad.data)


# -- smaller corners, as in PyTorch --------------------------------------------------------


def test_expand_with_minus_one_in_a_new_leading_dimension_is_refused():
    with pytest.raises(RuntimeError, match="isn't allowed in a leading, non-existing dimension"):
        torch.zeros(2).expand(-1, 2)
    with pytest.raises(RuntimeError, match="isn't allowed in a leading, non-existing dimension"):
        tg.zeros(2).expand(-1, 2)
    assert tg.zeros(1, 2).expand(3, -1).shape == torch.zeros(1, 2).expand(3, -1).shape


def test_grad_of_a_non_scalar_names_its_keyword():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="grad_outputs="):
        tg.grad(x * 2, x)
    with pytest.raises(RuntimeError, match="gradient="):
        (x * 2).backward()
