"""nn.Module and nn.Parameter: registration, traversal, modes, state dicts, devices, repr."""

import copy
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(tg.ones(4))
        self.register_buffer("running", tg.zeros(4))
        self.register_buffer("scratch", tg.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))

    def forward(self, x):
        return self.head(self.block(x))


def test_parameter_is_a_tensor_that_requires_grad_and_shares_memory():
    t = tg.randn(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, tg.Tensor) and p.requires_grad and p.is_leaf
    assert p.data is t.data
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    y = p * 2
    assert type(y) is tg.Tensor and type(p.detach()) is tg.Tensor
    assert repr(p).startswith("Parameter containing:\ntensor(")


def test_named_parameters_children_modules():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "head.1.weight",
                     "head.1.bias"]
    assert [p for p in net.parameters()] == [p for _, p in net.named_parameters()]
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "head", "head.0",
                                                   "head.1"]
    assert len(list(net.modules())) == 6
    assert [n for n, _ in net.named_parameters(recurse=False)] == []
    assert [n for n, _ in net.named_buffers()] == ["block.running", "block.scratch"]
    assert net.get_submodule("head.1") is net.head[1]
    assert net.get_parameter("block.fc.bias") is net.block.fc.bias


def test_shared_parameters_are_listed_once():
    a = nn.Linear(2, 2)
    seq = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_attribute_registration_rules():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="nn.Parameter or None expected"):
        m.weight = tg.zeros(3, 2)
    m.bias = None
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    m.extra = nn.Parameter(tg.zeros(1))
    assert "extra" in dict(m.named_parameters())
    del m.extra
    assert "extra" not in dict(m.named_parameters())
    m.plain = 3
    assert m.plain == 3 and "plain" not in m._parameters
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        getattr(m, "nothing")  # noqa: B009

    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tg.zeros(1))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Forgot()

    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="forward"):
        NoForward()(1)


def test_train_eval_and_requires_grad():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_zero_grad_both_ways():
    net = Net()
    net(tg.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_is_ordered_detached_and_shares_memory():
    net = Net()
    state = net.state_dict()
    assert isinstance(state, OrderedDict)
    assert list(state) == ["block.scale", "block.running", "block.fc.weight", "block.fc.bias",
                           "head.1.weight", "head.1.bias"]
    w = state["block.fc.weight"]
    assert type(w) is tg.Tensor and not w.requires_grad and w.is_leaf
    assert w.data is net.block.fc.weight.data
    kept = net.state_dict(keep_vars=True)
    assert kept["block.fc.weight"] is net.block.fc.weight


def test_load_state_dict_round_trip_keeps_identity():
    a, b = Net(), Net()
    x = tg.randn(4, 3)
    weight = b.block.fc.weight
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.block.fc.weight is weight
    np.testing.assert_array_equal(b(x).numpy(), a(x).numpy())
    # values only: changing a afterwards leaves b alone
    a.block.fc.weight.data += 1
    assert not np.array_equal(a.block.fc.weight.numpy(), b.block.fc.weight.numpy())
    # numpy arrays and other dtypes are cast to the parameter's dtype
    state = {k: v.numpy().astype(np.float64) for k, v in a.state_dict().items()}
    b.load_state_dict(state)
    assert b.block.fc.weight.dtype == np.float32
    np.testing.assert_array_equal(b.block.fc.weight.numpy(), a.block.fc.weight.numpy())


def test_load_state_dict_errors_are_one_sentence_and_atomic():
    net = nn.MLP([2, 3, 2])
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    state = nn.MLP([2, 3, 2]).state_dict()
    del state["layers.2.bias"]
    state["layers.9.weight"] = tg.zeros(1)
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert message.count(".") >= 1 and "\n" not in message
    assert "Error(s) in loading state_dict for MLP" in message
    assert "missing key(s) 'layers.2.bias'" in message
    assert "unexpected key(s) 'layers.9.weight'" in message
    assert "strict=False" in message
    for k, v in net.state_dict().items():  # nothing was copied
        np.testing.assert_array_equal(v.numpy(), before[k])
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["layers.2.bias"]
    assert result.unexpected_keys == ["layers.9.weight"]
    wrong = nn.MLP([3, 3, 2]).state_dict()
    with pytest.raises(RuntimeError, match=r"size mismatch for layers.0.weight \(checkpoint "
                                           r"\(3, 3\), model \(3, 2\)\)"):
        net.load_state_dict(wrong, strict=False)
    with pytest.raises(TypeError, match="expects a dict"):
        net.load_state_dict([1, 2])


def test_to_double_float_keeps_parameter_identity():
    net = Net()
    params = list(net.parameters())
    net(tg.randn(2, 3)).sum().backward()
    assert net.double() is net
    assert list(net.parameters()) == params
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert net.block.running.dtype == np.float64
    out = net(tg.randn(2, 3, dtype="float64"))
    assert out.dtype == np.float64
    net.to("float32")
    assert all(p.dtype == np.float32 for p in params)
    net.to(dtype="float64").to("cpu")
    assert all(p.dtype == np.float64 for p in params)
    with pytest.raises(TypeError, match="floating point"):
        net.to(dtype="int64")


def test_apply_and_deepcopy():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "Block", "ReLU", "Linear", "Sequential", "Net"]

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)

    net.apply(init)
    assert not net.block.fc.weight.numpy().any()
    clone = copy.deepcopy(net)
    assert isinstance(clone.block.fc.weight, nn.Parameter)
    assert clone.block.fc.weight is not net.block.fc.weight
    clone.block.fc.weight.data += 1
    assert not net.block.fc.weight.numpy().any()


def test_sequential_indexing_len_iteration():
    seq = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    assert len(seq) == 3
    assert isinstance(seq[0], nn.Linear) and seq[-1] is seq[2]
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh", "Linear"]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and sub[1] is seq[2]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and list(seq._modules) == ["0", "1", "2", "3"]
    named = nn.Sequential(OrderedDict(hidden=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in named.named_parameters()] == ["hidden.weight", "hidden.bias"]
    out = seq(tg.randn(5, 2))
    assert out.shape == (5, 1) and (out.numpy() > 0).all()
    layers = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 1)])
    assert len(layers) == 2 and len(list(layers.parameters())) == 4
    heads = nn.ModuleDict({"a": nn.Linear(1, 1)})
    assert "a" in heads and [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias"]


def test_repr_matches_pytorch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.1), nn.LeakyReLU(0.2),
                         nn.Tanh(), nn.Sigmoid(), nn.Flatten(), nn.Softmax(dim=1),
                         nn.LogSoftmax(dim=-1), nn.Identity(), nn.Linear(16, 3, bias=False))
    theirs = torch.nn.Sequential(
        torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.LeakyReLU(0.2),
        torch.nn.Tanh(), torch.nn.Sigmoid(), torch.nn.Flatten(), torch.nn.Softmax(dim=1),
        torch.nn.LogSoftmax(dim=-1), torch.nn.Identity(), torch.nn.Linear(16, 3, bias=False))
    assert repr(ours) == repr(theirs)
    for a, b in [(nn.MSELoss(), torch.nn.MSELoss()),
                 (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss())]:
        assert repr(a) == repr(b)
    text = repr(nn.MLP([2, 8, 1]))
    assert text.startswith("MLP(\n  (layers): Sequential(\n    (0): Linear(in_features=2, "
                           "out_features=8, bias=True)\n    (1): ReLU()")


def test_module_call_runs_forward():
    m = nn.Linear(3, 2)
    x = tg.randn(4, 3)
    np.testing.assert_array_equal(m(x).numpy(), m.forward(x).numpy())


@pytest.mark.gpu
def test_module_moves_to_the_gpu_and_back():
    net = nn.MLP([3, 8, 2])
    params = list(net.parameters())
    x = tg.randn(5, 3)
    expected = net(x).numpy()
    net.to("cuda")
    assert list(net.parameters()) == params and all(p.device == "cuda:0" for p in params)
    out = net(x.to("cuda"))
    nn.functional.cross_entropy(out, tg.tensor([0, 1, 1, 0, 1]).to("cuda")).backward()
    assert all(p.grad.device == "cuda:0" for p in params)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    net.cpu()
    assert all(p.device == "cpu" and p.grad.device == "cpu" for p in params)
    net.load_state_dict(nn.MLP([3, 8, 2]).to("cuda").state_dict())
