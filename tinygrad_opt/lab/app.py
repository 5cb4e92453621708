"""The lab's web application: Starlette routes over the backprop, race and training
modules (the API table is in :mod:`tinygrad_opt.lab`).

The engine's work runs in worker threads (the event loop stays free to answer other
tabs) under one lock: the server does one piece of engine work at a time, so two
tabs never share the engine's global settings (default dtype, random generator)
mid-computation, and on a small machine the work would queue for the cores anyway.
A live training holds the lock only for one short slice (``SLICE_SECONDS``), so a
race or a graph asked meanwhile waits at most that long.
"""

import asyncio
import contextlib
import functools
import threading
from importlib import metadata, resources

import anyio
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from ..study import landscapes
from . import backprop, limits, racing, training
from .requests import BadRequest, parse_body, plain

SLICE_SECONDS = 0.12  # training work between two frames: ~6 frames a second
FRAME_SECONDS = 0.16  # at most one frame this often
# One per process, as the engine's global settings are (even two apps share them).
ENGINE_LOCK = threading.Lock()


def _static_dir():
    return str(resources.files("tinygrad_opt.lab") / "static")


def _version():
    try:
        return metadata.version("tinygrad-opt")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _error(message, status):
    return JSONResponse({"error": message}, status_code=status)


def _bad_request(error):
    return _error(error.message, error.status)


def _locked(work, *args):
    with ENGINE_LOCK:
        return work(*args)


async def _run(work, *args):
    """``work(*args)`` in a worker thread, under the engine lock."""
    return await anyio.to_thread.run_sync(_locked, work, *args)


# -- HTTP routes ------------------------------------------------------------------------------

async def _answer(work, *args):
    """``work(*args)`` run by :func:`_run`, answered as JSON; a :class:`BadRequest` it
    raises is answered with its 4xx status."""
    try:
        return JSONResponse(plain(await _run(work, *args)))
    except BadRequest as error:
        return _bad_request(error)


async def _answer_body(request, work):
    """A POST: the JSON body checked, then ``work(body)`` answered by :func:`_answer`."""
    try:
        body = parse_body(await request.body())
    except BadRequest as error:
        return _bad_request(error)
    return await _answer(work, body)


def json_endpoint(work):
    """A POST handler: the body checked, ``work(body)`` in a thread, errors as 4xx."""
    return functools.partial(_answer_body, work=work)


async def index(request):
    """GET /: the page."""
    return FileResponse(f"{_static_dir()}/index.html")


async def health(request):
    """GET /api/health: the server is up, and which version it runs."""
    return JSONResponse({"status": "ok", "version": _version()})


def _options(landscape):
    """What the page can choose from (the optimizers' knobs on ``landscape``), and the caps."""
    try:
        chosen = landscapes.get(landscape)
    except ValueError as error:
        raise BadRequest(str(error)) from None
    return {"landscapes": landscapes.names(), "landscape": chosen.name,
            "optimizers": [dict(o, minibatch=training.minibatch(o["name"]))
                           for o in racing.optimizer_knobs(chosen)],
            "datasets": list(training.DATASETS), "activations": list(training.ACTIVATIONS),
            "schedules": list(training.SCHEDULES), "limits": limits.as_dict()}


async def options(request):
    """GET /api/options?landscape=...: :func:`_options`."""
    return await _answer(_options, request.query_params.get("landscape", "rosenbrock"))


def _start_training(registry, body):
    """The work of POST /api/train (under the engine lock: it builds a model)."""
    return {"id": registry.create(training.parse_config(body))}


async def start_training(request):
    """POST /api/train: a new session in the app's registry, from the body; its id."""
    registry = request.app.state.registry
    return await _answer_body(request, functools.partial(_start_training, registry))


async def stop_training(request):
    """DELETE /api/train/{key}: stop the session and wake its socket, which then closes."""
    state, key = request.app.state, request.path_params["key"]
    if state.registry.remove(key):
        if key in state.wakes:
            state.wakes[key].set()  # its socket's loop sees `stopped` and closes
        return JSONResponse({"stopped": True})
    return _error("no training with this id is running (it stopped or never "
                  "started).", 404)


async def not_found(request, exc):
    """404 and 405: JSON under /api/ (naming the route asked for), plain text elsewhere."""
    if request.url.path.startswith("/api/"):
        return _error(f"no API route {request.method} {request.url.path}; see GET "
                      "/api/options and the README.", exc.status_code)
    return Response("not found", status_code=exc.status_code)


async def server_error(request, exc):
    """Any other failure: a 500 in JSON; the server goes on."""
    return _error(f"the server failed on this request ({type(exc).__name__}); the lab "
                  "keeps running.", 500)


# -- the live training's socket ---------------------------------------------------------------

async def train_socket(websocket):
    """WS /api/train/{key}: claim the session, then serve it (:class:`_TrainingSocket`);
    the session ends with the socket."""
    state, key = websocket.app.state, websocket.path_params["key"]
    session = state.registry.claim(key)
    await websocket.accept()
    if session is None:
        await websocket.send_json({"error": "no training with this id; start one with "
                                            "POST /api/train."})
        await websocket.close(code=4404)
        return
    live = _TrainingSocket(websocket, session)
    state.wakes[key] = live.wake
    try:
        await live.serve()
    finally:
        state.wakes.pop(key, None)
        state.registry.remove(key)


class _TrainingSocket:
    """One tab's socket on a live training: frames pushed while it runs, and the tab's
    run, pause and reset obeyed. ``wake`` is set by any message (and by a stop), so a
    paused push loop looks again."""

    def __init__(self, websocket, session):
        self.websocket, self.session = websocket, session
        self.wake = asyncio.Event()

    async def serve(self):
        """Listen and push together until either ends."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._until_closed, self._listen, group)
            group.start_soon(self._until_closed, self._push, group)

    async def _listen(self):
        websocket, session = self.websocket, self.session
        while True:
            message = await websocket.receive_json()
            action = message.get("action") if isinstance(message, dict) else None
            if action == "reset":
                await _run(session.reset)
                await websocket.send_json(plain(await _run(session.frame)))
            elif action in ("run", "pause"):
                session.running = action == "run"
            else:
                await websocket.send_json({"error": f"unknown action {action!r}; send "
                                                    "run, pause or reset."})
            self.wake.set()

    async def _push(self):
        websocket, session = self.websocket, self.session
        await websocket.send_json(plain({"points": await _run(session.points),
                                         **await _run(session.frame)}))
        while not session.stopped:
            if not session.running:
                self.wake.clear()
                await self.wake.wait()
                continue
            started = anyio.current_time()
            await _run(session.advance, SLICE_SECONDS)
            await websocket.send_json(plain(await _run(session.frame)))
            await anyio.sleep(max(0.0, FRAME_SECONDS - (anyio.current_time() - started)))
        await websocket.close()

    async def _until_closed(self, task, group):
        # Either task ending ends both: the tab went away, or the work failed.
        try:
            await task()
        except WebSocketDisconnect:
            pass  # the tab closed: nothing left to tell
        except Exception as error:  # noqa: BLE001 - ends this socket only
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.websocket.send_json({"error": f"the training stopped: "
                                                         f"{type(error).__name__}: {error}"})
        finally:
            group.cancel_scope.cancel()


def create_app():
    """A new lab application (its own training sessions): an ASGI callable. Its state
    holds the ``registry`` of sessions and, per session with an open socket, the
    ``wakes`` event that socket's loop waits on while paused."""
    routes = [
        Route("/", index),
        Route("/api/health", health),
        Route("/api/options", options),
        Route("/api/graph", json_endpoint(backprop.graph), methods=["POST"]),
        Route("/api/race", json_endpoint(racing.race), methods=["POST"]),
        Route("/api/landscape", json_endpoint(racing.landscape_grid), methods=["POST"]),
        Route("/api/train", start_training, methods=["POST"]),
        Route("/api/train/{key}", stop_training, methods=["DELETE"]),
        WebSocketRoute("/api/train/{key}", train_socket),
        Mount("/static", StaticFiles(directory=_static_dir()), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found,
                                                       Exception: server_error})
    app.state.registry = training.Registry()
    app.state.wakes = {}
    return app
