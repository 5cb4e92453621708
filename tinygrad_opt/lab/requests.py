"""Reading a request's JSON body: each field checked once, with a one-sentence error.

A :class:`BadRequest` becomes the answer ``{"error": message}`` with its status
(400 by default; 413 for a body over the cap, 429 for too many trainings), so
every handler can simply raise it."""

import json
import math

import numpy as np

from . import limits


class BadRequest(Exception):
    """A request the server refuses: ``message`` (one sentence) and an HTTP ``status``."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.message, self.status = message, status


def parse_body(raw):
    """The JSON object in the bytes ``raw``."""
    if len(raw) > limits.MAX_BODY_BYTES:
        raise BadRequest(f"the request body has {len(raw)} bytes; the limit is "
                         f"{limits.MAX_BODY_BYTES}.", status=413)
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the request body is not valid JSON ({error}); send an object "
                         "such as {\"landscape\": \"rosenbrock\"}.") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got "
                         f"{type(body).__name__}.")
    return body


def number(body, key, default, low, high, integer=False):
    """``body[key]`` (or ``default``) as a number in [low, high]."""
    value = body.get(key, default)
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (integer and not float(value).is_integer()) or not math.isfinite(value):
        raise BadRequest(f"{key} must be {kind} from {low:g} to {high:g}, got {value!r}.")
    if not low <= value <= high:
        raise BadRequest(f"{key}={value:g} is outside the allowed range {low:g} to {high:g}.")
    return int(value) if integer else float(value)


def text(body, key, default=None, choices=None):
    """``body[key]`` as a string (one of ``choices`` when given)."""
    value = body.get(key, default)
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string, got {value!r}.")
    if choices is not None and value not in choices:
        raise BadRequest(f"unknown {key} {value!r}; choose from {', '.join(choices)}.")
    return value


def point(body, key):
    """``body[key]`` as two finite numbers, or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
            for c in value):
        raise BadRequest(f"{key} must be two finite numbers [x, y], got {value!r}.")
    return (float(value[0]), float(value[1]))


def plain(value):
    """NumPy arrays and scalars as lists and floats, NaN and ±inf as None: strict JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
