"""``tinygrad-opt lab``: the interactive lab in the browser (backprop step by step,
optimizer races, live training), served on this machine.

    tinygrad-opt lab                          # http://127.0.0.1:8765/, opens the browser
    tinygrad-opt lab --port 9000 --no-browser

It binds 127.0.0.1, so only this machine can use it; ``--host 0.0.0.0`` serves
every network the machine is on (with a warning: anyone there can use it, and
it runs the library's code on their requests). Needs the ``lab`` extra:
``pip install 'tinygrad-opt[lab]'`` (Starlette and uvicorn).
"""

import socket
import sys
import webbrowser

from . import CommandError, UsageError

HELP = "the interactive lab in the browser: backprop step by step, optimizer races, live training"

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser):
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any "
                                                               "free port)")
    parser.add_argument("--no-browser", action="store_true",
                        help="print the URL but do not open a browser")


def run(args):
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}.")
    try:
        import uvicorn  # optional (the lab extra), as is Starlette, which the lab imports

        from ..lab import create_app
    except ImportError as error:
        raise CommandError(f"the lab needs Starlette and uvicorn ({error.name} is missing): "
                           "pip install 'tinygrad-opt[lab]'.") from None
    if args.host not in LOOPBACK:
        print(f"warning: serving on {args.host}: anyone who can reach this machine on that "
              "network can use the lab and run computations on it.", file=sys.stderr)
    # Bind first, so that the printed URL has the real port (--port 0) and a port in
    # use is one clear sentence rather than uvicorn's traceback.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(128)  # from now on a browser's connection waits for the server
    except OSError as error:
        sock.close()
        raise CommandError(f"cannot listen on {args.host}:{args.port}: "
                           f"{error.strerror or error}; choose another --port.") from None
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"
    print(f"the lab is at {url} (Ctrl-C stops it)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning"))
    server.run(sockets=[sock])
    return 0
