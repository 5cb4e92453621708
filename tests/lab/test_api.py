"""The lab's JSON API through Starlette's test client: every answer equals the library's
own computation, and every kind of bad request gets a 4xx one-sentence error."""

import json

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx2")

import tinygrad_opt as tg
from tinygrad_opt.lab import create_app, limits
from tinygrad_opt.study import race


@pytest.fixture(scope="module")
def client():
    from starlette.testclient import TestClient

    with TestClient(create_app()) as c:
        yield c


def _error(response, status=400):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    message = body["error"]
    assert message.endswith(".") and "Traceback" not in message and "\n" not in message
    return message


def test_health_and_page(client):
    assert client.get("/api/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200
    for testid in ("expr", "draw", "step", "graph", "race-run", "race-plot", "race-table",
                   "train-run", "train-loss"):
        assert f'data-testid="{testid}"' in page.text
    assert "http" not in client.get("/static/main.js").text  # nothing from the network


def test_race_equals_study_race(client):
    request = {"landscape": "rosenbrock", "optimizers": ["adam:lr=0.05", "newton", "bfgs"],
               "start": [-1.2, 1.0], "steps": 60}
    answer = client.post("/api/race", json=request).json()
    expected = race.race("rosenbrock", request["optimizers"], start=(-1.2, 1.0), steps=60)
    assert [r["label"] for r in answer["runs"]] == ["adam lr=0.05", "newton", "bfgs"]
    for got, run in zip(answer["runs"], expected.runs):
        np.testing.assert_array_equal(np.array(got["path"]), run.path)
        np.testing.assert_array_equal(np.array(got["loss"]), run.loss)
        assert got["nfev"] == run.nfev.tolist()
        assert got["status"] == run.status
        np.testing.assert_array_equal(np.array(got["trials"]).reshape(-1, 2),
                                      run.trial_points())
    assert answer["table"] == json.loads(json.dumps(expected.table()))


def test_race_on_the_quadratic_with_its_knobs(client):
    answer = client.post("/api/race", json={"landscape": "quadratic:kappa=50,angle=30",
                                            "optimizers": ["sgd"], "steps": 5}).json()
    expected = race.race("quadratic:kappa=50,angle=30", ["sgd"], steps=5)
    np.testing.assert_array_equal(np.array(answer["runs"][0]["path"]), expected.runs[0].path)
    grid = client.post("/api/landscape", json={"landscape": "quadratic:kappa=50"}).json()
    assert len(grid["z"]) == limits.GRID and grid["f_min"] == 0.0


def _engine_grads(expr, values):
    from tinygrad_opt.study.expressions import evaluate

    leaves = {k: tg.Tensor(v, dtype="float64", requires_grad=True) for k, v in values.items()}
    evaluate(expr, leaves).backward()
    return {k: leaf.grad.numpy().tolist() for k, leaf in leaves.items()}


def test_graph_gradients_equal_the_engines(client):
    values = {"a": 2.0, "b": -3.0, "c": 0.5, "x": [1.0, -2.0, 0.25]}
    expr = "a*b + c.tanh() + (x*a).exp().sum()"
    answer = client.post("/api/graph", json={"expr": expr, "vars": values}).json()
    assert answer["svg"].lstrip().startswith("<?xml") and "<svg" in answer["svg"]
    assert answer["grads"] == _engine_grads(expr, values)
    # The gradient each backward function handed to the leaves adds up to .grad.
    total = {}
    for entry in answer["backward"]:
        for handed in entry["handed"]:
            if handed["leaf"]:
                total[handed["input"]] = np.add(total.get(handed["input"], 0), handed["grad"])
    for name, grad in answer["grads"].items():
        np.testing.assert_allclose(total[name], grad, rtol=1e-15)
    assert [e["step"] for e in answer["backward"]] == list(range(1, len(answer["backward"]) + 1))


def test_graph_steps_come_in_the_engines_order(client, monkeypatch):
    """Record the order in which the engine itself calls each op's vjp, and compare."""
    from tinygrad_opt import function

    expr = "e = a*b; d = e + c; L = d * f.tanh()"
    values = {"a": 2.0, "b": -3.0, "c": 10.0, "f": -2.0}
    leaves = {k: tg.Tensor(v, dtype="float64", requires_grad=True) for k, v in values.items()}
    from tinygrad_opt.study.expressions import evaluate

    root = evaluate(expr, leaves)
    seen, calls = [], []
    stack = [root]
    while stack:
        t = stack.pop()
        if t._node is not None and t._node.op not in seen:
            seen.append(t._node.op)
            stack.extend(t._node.inputs)
    for op in seen:
        original = op.vjp

        def recording(node, grad, out, _original=original, _op=op):
            calls.append(f"{_op.__name__}Backward")
            return _original(node, grad, out)
        monkeypatch.setattr(op, "vjp", staticmethod(recording))
    root.backward()
    monkeypatch.undo()
    answer = client.post("/api/graph", json={"expr": expr, "vars": values}).json()
    assert [e["function"] for e in answer["backward"]] == calls
    assert isinstance(function.Node, type)


def test_order_two_is_the_hessian_vector_product(client):
    values = {"a": 0.7, "b": -1.3}
    answer = client.post("/api/graph", json={"expr": "(a*b).tanh() + a**3", "vars": values,
                                             "order": 2}).json()
    a, b = (tg.Tensor(values[k], dtype="float64", requires_grad=True) for k in "ab")
    f = (a * b).tanh() + a ** 3
    ga, gb = tg.grad(f, [a, b], create_graph=True)
    hv = tg.grad(ga + gb, [a, b])  # H·1
    assert answer["grads"] == {"a": hv[0].item(), "b": hv[1].item()}
    assert {e["order"] for e in answer["backward"]} == {0, 1}


def test_mlp_graph(client):
    answer = client.post("/api/graph", json={"mlp": "2-3-1"}).json()
    assert set(answer["grads"]) == {"layers.0.weight", "layers.0.bias", "layers.2.weight",
                                    "layers.2.bias"}
    assert np.array(answer["grads"]["layers.0.weight"]).shape == (3, 2)


@pytest.mark.parametrize("path, body, fragment", [
    ("/api/race", b"{not json", "not valid JSON"),
    ("/api/race", b"[1, 2]", "JSON object"),
    ("/api/race", {"landscape": "everest", "optimizers": ["adam"]}, "unknown landscape"),
    ("/api/race", {"optimizers": ["adamm"]}, "unknown optimizer"),
    ("/api/race", {"optimizers": ["adam:lr=-1"]}, "learning rate"),
    ("/api/race", {"optimizers": ["adam:gamma=2"]}, "unknown hyperparameter"),
    ("/api/race", {"optimizers": []}, "non-empty list"),
    ("/api/race", {"optimizers": ["lm"], "landscape": "rastrigin"}, "least-squares"),
    ("/api/race", {"optimizers": ["sgd"], "steps": limits.MAX_RACE_STEPS + 1}, "outside"),
    ("/api/race", {"optimizers": ["sgd"] * (limits.MAX_RACE_OPTIMIZERS + 1)}, "at most"),
    ("/api/race", {"optimizers": ["sgd"], "start": [0, "x"]}, "two finite numbers"),
    ("/api/graph", {"expr": "__import__('os')", "vars": {}}, "unknown function"),
    ("/api/graph", {"expr": "a.__class__", "vars": {"a": 1}}, "attribute"),
    ("/api/graph", {"expr": "a *", "vars": {"a": 1}}, "cannot parse"),
    ("/api/graph", {"expr": "a * q", "vars": {"a": 1}}, "unknown name 'q'"),
    ("/api/graph", {"expr": "2 + 3", "vars": {}}, "does not depend"),
    ("/api/graph", {"expr": "x * 2", "vars": {"x": [1, 2]}}, ".sum()"),
    ("/api/graph", {"expr": "x.sum()", "vars": {"x": [1.0] * 17}}, "list of 1 to 16"),
    ("/api/graph", {"expr": "a", "vars": {"a": 1}, "order": 3}, "outside"),
    ("/api/graph", {"expr": "a + 1", "vars": {"a": 1}, "order": 2}, "constant"),
    ("/api/graph", {"mlp": "2-100-1"}, "layer sizes"),
    ("/api/graph", {"expr": "a", "mlp": "2-1", "vars": {"a": 1}}, "either expr"),
    ("/api/graph", {"expr": "+".join(["a"] * (limits.MAX_GRAPH_OPS + 2)), "vars": {"a": 1}},
     "at most"),
    ("/api/train", {"dataset": "mnist"}, "unknown dataset"),
    ("/api/train", {"optimizer": "newton"}, "mini-batch"),
    ("/api/train", {"hidden": [8, 1000]}, "hidden"),
])
def test_bad_requests_get_one_sentence(client, path, body, fragment):
    if isinstance(body, bytes):
        response = client.post(path, content=body)
    else:
        response = client.post(path, json=body)
    assert fragment in _error(response)


def test_body_over_the_cap_and_unknown_routes(client):
    big = json.dumps({"optimizers": ["sgd"], "pad": "x" * limits.MAX_BODY_BYTES})
    assert "limit" in _error(client.post("/api/race", content=big), 413)
    assert "no API route" in _error(client.get("/api/race"), 405)
    assert "no API route" in _error(client.get("/api/nothing"), 404)


def test_live_training_pushes_frames_and_stops(client):
    started = client.post("/api/train", json={"dataset": "xor", "hidden": [8],
                                              "optimizer": "adam:lr=0.05",
                                              "lambda_max": True}).json()
    with client.websocket_connect(f"/api/train/{started['id']}") as socket:
        first = socket.receive_json()
        assert first["step"] == 0 and len(first["points"]["x"]) == 300
        assert len(first["boundary"]["cls"]) == limits.GRID ** 2
        socket.send_json({"action": "run"})
        frames = [socket.receive_json() for _ in range(3)]
        assert [f["step"] for f in frames] == sorted(f["step"] for f in frames)
        assert frames[-1]["step"] > 0 and frames[-1]["train_loss"] < first["train_loss"]
        assert frames[-1]["edge"] == pytest.approx(2 / 0.05)
        assert frames[-1]["lambda_max"] > 0
        socket.send_json({"action": "pause"})
        socket.send_json({"action": "reset"})
        while True:  # frames already on their way, then the reset's
            frame = socket.receive_json()
            if frame["step"] == 0:
                break
        assert frame["train_loss"] == pytest.approx(first["train_loss"])
        socket.send_json({"action": "jump"})
        reply = socket.receive_json()
        while "error" not in reply:  # frames already on their way
            reply = socket.receive_json()
        assert "unknown action" in reply["error"]
    # Closing the socket stopped the session and freed its place.
    assert client.app.state.registry.sessions == {}
    assert _error(client.delete(f"/api/train/{started['id']}"), 404)


def test_delete_stops_a_connected_training(client):
    from starlette.websockets import WebSocketDisconnect

    key = client.post("/api/train", json={}).json()["id"]
    with client.websocket_connect(f"/api/train/{key}") as socket:
        socket.receive_json()
        socket.send_json({"action": "run"})
        socket.receive_json()
        assert client.delete(f"/api/train/{key}").json() == {"stopped": True}
        with pytest.raises(WebSocketDisconnect):
            while True:  # the frames under way, then the close
                socket.receive_json()
    assert client.app.state.registry.sessions == {}


def test_concurrent_trainings_are_capped(client):
    ids = [client.post("/api/train", json={}).json()["id"] for _ in range(limits.MAX_TRAININGS)]
    assert "at once" in _error(client.post("/api/train", json={}), 429)
    for key in ids:
        assert client.delete(f"/api/train/{key}").json() == {"stopped": True}
    with client.websocket_connect("/api/train/nope") as socket:
        assert "no training" in socket.receive_json()["error"]


def test_two_clients_at_once_get_their_own_answers(client):
    from concurrent.futures import ThreadPoolExecutor

    requests = [("/api/race", {"landscape": "booth", "optimizers": ["newton"], "steps": 3}),
                ("/api/graph", {"expr": "a*a", "vars": {"a": 3.0}}),
                ("/api/race", {"landscape": "beale", "optimizers": ["adam"], "steps": 30}),
                ("/api/graph", {"expr": "a.exp()", "vars": {"a": 0.0}})]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda r: client.post(r[0], json=r[1]).json(), requests * 2))
    assert answers[:4] == answers[4:]
    assert answers[1]["grads"] == {"a": 6.0} and answers[3]["grads"] == {"a": 1.0}
    assert answers[0]["runs"][0]["path"][-1] == pytest.approx([1.0, 3.0])
