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


def create_app():
    """A new lab application (its own training sessions): an ASGI callable."""
    registry = training.Registry()
    wakes = {}  # training id -> the event its socket's loop waits on while paused

    def locked(work, *args):
        with ENGINE_LOCK:
            return work(*args)

    async def run(work, *args):
        return await anyio.to_thread.run_sync(locked, work, *args)

    def json_endpoint(work):
        """A POST handler: the body checked, ``work(body)`` in a thread, errors as 4xx."""
        async def endpoint(request):
            try:
                body = parse_body(await request.body())
                return JSONResponse(plain(await run(work, body)))
            except BadRequest as error:
                return _error(error.message, error.status)
        return endpoint

    async def health(request):
        return JSONResponse({"status": "ok", "version": _version()})

    def options(landscape):
        try:
            chosen = landscapes.get(landscape)
        except ValueError as error:
            raise BadRequest(str(error)) from None
        return {"landscapes": landscapes.names(), "landscape": chosen.name,
                "optimizers": [dict(o, minibatch=training.minibatch(o["name"]))
                               for o in racing.optimizer_knobs(chosen)],
                "datasets": list(training.DATASETS), "activations": list(training.ACTIVATIONS),
                "schedules": list(training.SCHEDULES), "limits": limits.as_dict()}

    async def options_endpoint(request):
        try:
            return JSONResponse(plain(await run(
                options, request.query_params.get("landscape", "rosenbrock"))))
        except BadRequest as error:
            return _error(error.message, error.status)

    def start_training(body):
        return {"id": registry.create(training.parse_config(body))}

    async def stop_training(request):
        key = request.path_params["key"]
        if registry.remove(key):
            if key in wakes:
                wakes[key].set()  # its socket's loop sees `stopped` and closes
            return JSONResponse({"stopped": True})
        return _error("no training with this id is running (it stopped or never "
                      "started).", 404)

    async def train_socket(websocket):
        key = websocket.path_params["key"]
        session = registry.claim(key)
        await websocket.accept()
        if session is None:
            await websocket.send_json({"error": "no training with this id; start one with "
                                                "POST /api/train."})
            await websocket.close(code=4404)
            return
        wake = wakes[key] = asyncio.Event()

        async def listen():
            while True:
                message = await websocket.receive_json()
                action = message.get("action") if isinstance(message, dict) else None
                if action == "reset":
                    await run(session.reset)
                    await websocket.send_json(plain(await run(session.frame)))
                elif action in ("run", "pause"):
                    session.running = action == "run"
                else:
                    await websocket.send_json({"error": f"unknown action {action!r}; send "
                                                        "run, pause or reset."})
                wake.set()

        async def push():
            await websocket.send_json(plain({"points": await run(session.points),
                                             **await run(session.frame)}))
            while not session.stopped:
                if not session.running:
                    wake.clear()
                    await wake.wait()
                    continue
                started = anyio.current_time()
                await run(session.advance, SLICE_SECONDS)
                await websocket.send_json(plain(await run(session.frame)))
                await anyio.sleep(max(0.0, FRAME_SECONDS - (anyio.current_time() - started)))
            await websocket.close()

        async def until_closed(task, group):
            # Either task ending ends both: the tab went away, or the work failed.
            try:
                await task()
            except WebSocketDisconnect:
                pass  # the tab closed: nothing left to tell
            except Exception as error:  # noqa: BLE001 - ends this socket only
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await websocket.send_json({"error": f"the training stopped: "
                                                        f"{type(error).__name__}: {error}"})
            finally:
                group.cancel_scope.cancel()

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(until_closed, listen, group)
                group.start_soon(until_closed, push, group)
        finally:
            wakes.pop(key, None)
            registry.remove(key)

    async def index(request):
        return FileResponse(f"{_static_dir()}/index.html")

    async def not_found(request, exc):
        if request.url.path.startswith("/api/"):
            return _error(f"no API route {request.method} {request.url.path}; see GET "
                          "/api/options and the README.", exc.status_code)
        return Response("not found", status_code=exc.status_code)

    async def server_error(request, exc):
        return _error(f"the server failed on this request ({type(exc).__name__}); the lab "
                      "keeps running.", 500)

    routes = [
        Route("/", index),
        Route("/api/health", health),
        Route("/api/options", options_endpoint),
        Route("/api/graph", json_endpoint(backprop.graph), methods=["POST"]),
        Route("/api/race", json_endpoint(racing.race), methods=["POST"]),
        Route("/api/landscape", json_endpoint(racing.landscape_grid), methods=["POST"]),
        Route("/api/train", json_endpoint(start_training), methods=["POST"]),
        Route("/api/train/{key}", stop_training, methods=["DELETE"]),
        WebSocketRoute("/api/train/{key}", train_socket),
        Mount("/static", StaticFiles(directory=_static_dir()), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found,
                                                       Exception: server_error})
    app.state.registry = registry
    return app
