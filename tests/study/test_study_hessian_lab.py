"""The Hessian lab against numpy.linalg.eigvalsh, finite differences and PyTorch."""

import numpy as np
import pytest

import tinygrad_opt as tg
from tinygrad_opt import nn
from tinygrad_opt.data import make_moons
from tinygrad_opt.study import hessian_lab as hl


@pytest.fixture(scope="module")
def problem():
    tg.manual_seed(3)
    X, y = make_moons(60, noise=0.2, seed=3)
    model = nn.MLP([2, 5, 4, 2], activation="tanh", dtype="float64")
    opt = tg.optim.Adam(model.parameters(), lr=0.02)
    Xt, yt = tg.Tensor(X.astype(np.float64)), tg.Tensor(y)
    for _ in range(100):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(Xt), yt)
        loss.backward()
        opt.step()
    return model, X.astype(np.float64), y


def _flat_grad(model, X, y):
    params = list(model.parameters())
    loss = nn.functional.cross_entropy(model(tg.Tensor(X)), tg.Tensor(y))
    return np.concatenate([g.numpy().ravel() for g in tg.grad(loss, params)])


def test_exact_hessian_matches_finite_differences_of_the_gradient(problem):
    model, X, y = problem
    params = list(model.parameters())
    H = hl.exact_hessian(lambda: nn.functional.cross_entropy(model(tg.Tensor(X)),
                                                             tg.Tensor(y)), model)
    n = sum(p.numel() for p in params)
    assert H.shape == (n, n)
    np.testing.assert_array_equal(H, H.T)
    eps = 1e-6
    for j in (0, 7, n // 2, n - 1):
        p, offset = None, j
        for q in params:
            if offset < q.numel():
                p = q
                break
            offset -= q.numel()
        flat = p.data.reshape(-1)
        flat[offset] += eps
        plus = _flat_grad(model, X, y)
        flat[offset] -= 2 * eps
        minus = _flat_grad(model, X, y)
        flat[offset] += eps
        np.testing.assert_allclose(H[:, j], (plus - minus) / (2 * eps), atol=1e-7, rtol=1e-5)


def test_exact_hessian_matches_pytorch(problem):
    torch = pytest.importorskip("torch")
    model, X, y = problem
    H = hl.exact_hessian(lambda: nn.functional.cross_entropy(model(tg.Tensor(X)),
                                                             tg.Tensor(y)), model)
    weights = [torch.tensor(p.numpy()) for p in model.parameters()]
    sizes = [w.numel() for w in weights]
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def loss(flat):
        ws = torch.split(flat, sizes)
        ws = [w.reshape(t.shape) for w, t in zip(ws, weights)]
        h = torch.tanh(Xt @ ws[0].T + ws[1])
        h = torch.tanh(h @ ws[2].T + ws[3])
        return torch.nn.functional.cross_entropy(h @ ws[4].T + ws[5], yt)

    expected = torch.autograd.functional.hessian(loss, torch.cat([w.reshape(-1)
                                                                  for w in weights]))
    np.testing.assert_allclose(H, expected.numpy(), atol=1e-12, rtol=1e-9)


def test_analyze_spectrum_is_eigvalsh_and_lanczos_finds_the_top(problem):
    model, X, y = problem
    report = hl.analyze(model, nn.functional.cross_entropy, X, y, k=4, samples=400)
    w = np.linalg.eigvalsh(report.hessian)
    np.testing.assert_array_equal(report.eigenvalues, w)
    assert report.lam_max == w[-1] and report.lam_min == w[0]
    assert report.n_negative == int((w < -report.zero_tol).sum())
    positive = w[w > report.zero_tol]
    assert report.condition == pytest.approx(w[-1] / positive.min())
    assert abs(report.lanczos.eigenvalues[0] - w[-1]) < 1e-6
    np.testing.assert_allclose(report.lanczos.eigenvalues, w[::-1][:4], atol=1e-6)
    assert abs(report.power[0]) == pytest.approx(np.abs(w).max(), rel=1e-6)
    assert report.trace == pytest.approx(np.trace(report.hessian))
    # Hutchinson: unbiased, so within a few standard errors of the exact trace
    assert abs(report.trace_estimate - report.trace) < 4 * report.trace_stderr
    assert report.hvps == report.lanczos.iterations + report.power[2] + 400
    # the model handed in is untouched (the lab works on a float64 copy)
    assert report.n == sum(p.numel() for p in model.parameters())


def test_hvp_is_the_hessian_times_v(problem):
    model, X, y = problem
    params = list(model.parameters())

    def loss():
        return nn.functional.cross_entropy(model(tg.Tensor(X)), tg.Tensor(y))

    H = hl.exact_hessian(loss, params)
    hvp = hl.HVP(loss, params)
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = rng.normal(size=hvp.n)
        np.testing.assert_allclose(hvp(v), H @ v, atol=1e-12, rtol=1e-10)
    assert hvp.count == 3
    np.testing.assert_allclose(hvp.gradient, _flat_grad(model, X, y), atol=1e-14)


def test_lanczos_on_a_matrix_with_close_top_eigenvalues():
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.normal(size=(200, 200)))
    w = np.concatenate([[10.0, 9.999, 9.99], rng.uniform(-5, 5, 197)])
    A = (Q * w) @ Q.T
    result = hl.lanczos(lambda v: A @ v, 200, k=3, tol=1e-12)
    np.testing.assert_allclose(result.eigenvalues, [10.0, 9.999, 9.99], atol=1e-8)
    # the bottom of a dense uniform spectrum converges slowly: with the default budget of
    # 60 products the reported residual bound still covers the error
    low = hl.lanczos(lambda v: A @ v, 200, k=1, which="smallest")
    assert low.iterations == 60
    assert 0 <= low.eigenvalues[0] - w.min() <= low.residuals[0]
    full = hl.lanczos(lambda v: A @ v, 200, k=1, which="smallest", max_iter=200)
    assert full.eigenvalues[0] == pytest.approx(w.min(), abs=1e-8)
    # the Ritz vector is an eigenvector
    y = result.vectors[:, 0]
    np.testing.assert_allclose(A @ y, 10.0 * y, atol=1e-6)


def test_power_iteration_and_hutchinson_on_known_matrices():
    A = np.diag([3.0, -7.0, 1.0, 0.5])
    lam, v, _ = hl.power_iteration(lambda x: A @ x, 4, tol=1e-14, max_iter=5000)
    assert lam == pytest.approx(-7.0, rel=1e-10)  # the largest magnitude, with its sign
    assert abs(v[1]) == pytest.approx(1.0, abs=1e-6)  # and its eigenvector e₂
    # For a diagonal matrix every Rademacher sample is exact: zᵀDz = Σ dᵢ zᵢ² = tr D.
    est, err, values = hl.hutchinson_trace(lambda z: A @ z, 4, samples=10)
    np.testing.assert_allclose(values, np.trace(A))
    assert est == pytest.approx(np.trace(A)) and err == pytest.approx(0.0)


def test_summarize_names_minimum_flat_minimum_and_saddle():
    assert hl.summarize([1.0, 2.0, 4.0])["kind"] == "minimum"
    s = hl.summarize([0.0, 2.0, 4.0])
    assert s["kind"] == "flat minimum" and s["condition"] == 2.0 and s["n_zero"] == 1
    s = hl.summarize([-1.0, 2.0, 8.0])
    assert s["kind"] == "saddle" and s["n_negative"] == 1 and s["condition"] == 4.0


def test_edge_of_stability_measures_lambda_max_against_two_over_eta(problem):
    model, X, y = problem
    params = list(model.parameters())

    def loss():
        return nn.functional.cross_entropy(model(tg.Tensor(X)), tg.Tensor(y))

    before = [p.numpy().copy() for p in params]
    lam0 = np.linalg.eigvalsh(hl.exact_hessian(loss, params))[-1]
    result = hl.edge_of_stability(model, nn.functional.cross_entropy, X, y, lr=0.5, steps=20,
                                  every=5, k_iters=60)
    assert list(result.steps) == [0, 5, 10, 15, 20]
    assert result.sharpness[0] == pytest.approx(lam0, rel=1e-6)
    assert result.threshold == 4.0 and len(result.loss) == 20
    heavy = hl.edge_of_stability(model, nn.functional.cross_entropy, X, y, lr=0.5, steps=1,
                                 every=1, momentum=0.9)
    assert heavy.threshold == pytest.approx((2 + 2 * 0.9) / 0.5)
    for p, b in zip(params, before):  # trained a copy
        np.testing.assert_array_equal(p.numpy(), b)


def test_kappa_is_defined_only_above_a_float64_gap():
    eps = np.finfo(np.float64).eps
    clear = hl.summarize([1e-17, 1e-3, 1.0, 10.0])
    assert clear["zero_tol"] == pytest.approx(4 * eps * 10.0)  # n·ε·λmax
    assert clear["rank"] == 3 and clear["n_zero"] == 1 and clear["n_small"] == 0
    assert clear["condition"] == pytest.approx(1e4)
    # a continuum of tiny eigenvalues just above the cutoff: κ would only say where it fell
    continuum = hl.summarize([1e-17, 1e-13, 1e-12, 1e-11, 1.0, 10.0])
    assert np.isnan(continuum["condition"]) and continuum["n_small"] == 3
    assert "effectively singular" in continuum["condition_note"]
    assert continuum["rank"] == 5


def test_curvature_is_named_with_the_gradient_norm():
    assert hl.summarize([-1.0, 2.0], grad_norm=0.0)["kind"] == "saddle"
    away = hl.summarize([-1.0, 2.0], grad_norm=0.029)
    assert away["kind"] == "indefinite Hessian, not a critical point" and not away["critical"]
    assert hl.summarize([1.0, 2.0], grad_norm=1.0)["kind"] == \
        "positive definite Hessian, not a critical point"


def test_the_lab_names_a_trained_network_by_its_gradient_and_gap(problem):
    model, X, y = problem
    lab = hl.analyze(model, nn.functional.cross_entropy, X, y, k=2, samples=2)
    rows = dict(lab.rows())
    assert rows["curvature"] == lab.kind
    assert lab.critical == (lab.grad_norm <= hl.GRAD_TOL)
    if not lab.critical:
        assert lab.kind.endswith("not a critical point")
    w = np.abs(lab.eigenvalues)
    in_band = ((w > lab.zero_tol) & (w <= hl.GAP * lab.zero_tol)).sum()
    assert np.isnan(lab.condition) == (in_band > 0)
    assert lab.rank == int((w > lab.zero_tol).sum())


def _numbers_in(text):
    import re

    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def test_edge_of_stability_sentences_follow_the_measurements():
    X, y = make_moons(200, noise=0.25, seed=0)
    tg.manual_seed(0)
    model = nn.MLP([2, 32, 32, 2], activation="tanh")
    eos = hl.edge_of_stability(model, nn.functional.cross_entropy, X, y, lr=0.4, steps=900,
                               every=25)
    sentences, numbers = hl.describe_edge_of_stability(eos)
    s, thr = eos.sharpness, eos.threshold
    # the lesson: λmax starts below 2/η, sharpens up to it, then stays near it
    assert s[0] < 0.6 * thr and numbers["first_above"] is not None
    first = int(np.nonzero(s >= thr)[0][0])
    assert numbers["first_above"] == eos.steps[first]
    tail = s[first:]
    assert numbers["above"] == (tail >= thr).sum()
    assert numbers["near"] == (np.abs(tail / thr - 1) <= 0.1).sum()
    assert numbers["near"] >= 0.6 * len(tail)
    text = " ".join(sentences)
    assert f"{s[0]:.3g}" in text and f"{s.max():.3g}" in text
    assert f"in {numbers['above']} of {len(tail)} measurements" in text
    assert f"by step {numbers['first_above']}" in text
    rises = int((np.diff(eos.loss) > 0).sum())
    assert (f"rising in {rises} of" in text) == (rises > 0)
    # a run that never gets there says so, and no sentence claims a crossing
    tg.manual_seed(0)
    calm = hl.edge_of_stability(nn.MLP([2, 8, 2], activation="tanh"),
                                nn.functional.cross_entropy, X, y, lr=0.01, steps=20, every=10)
    calm_text = " ".join(hl.describe_edge_of_stability(calm)[0])
    assert "never reaches 2/η" in calm_text and "by step" not in calm_text
