"""The lab: backprop, optimizer races and live training in the browser, on the real engine.

    tinygrad-opt lab                      # http://127.0.0.1:8765/ opens in the browser
    from tinygrad_opt.lab import create_app
    app = create_app()                    # an ASGI app (Starlette): uvicorn, TestClient, ...

The page (``static/``: plain HTML, CSS and JavaScript modules, no build step,
nothing fetched from the network) draws; every number it shows comes from the
JSON API below, which runs this library's engine and optimizers on the server:

=====================================  ===============================================
``GET  /api/health``                   ``{"status": "ok", "version": ...}``
``GET  /api/options``                  landscapes, optimizers, data sets, caps
``POST /api/graph``                    an expression's graph (SVG), its gradients and
                                       the backward functions in the engine's order
``POST /api/race``                     ``study.race.race`` on a landscape, as JSON
``POST /api/landscape``                the landscape on a grid (the race's contours)
``POST /api/train``                    start a live training session (returns its id)
``WS   /api/train/{id}``               its frames pushed several times a second;
                                       send ``{"action": "run" | "pause" | "reset"}``
``DELETE /api/train/{id}``             stop it (closing the socket does too)
=====================================  ===============================================

A bad request gets a 4xx answer ``{"error": "<one sentence>"}``; the caps on
work are in :mod:`tinygrad_opt.lab.limits`.
"""

from .app import create_app

__all__ = ["create_app"]
