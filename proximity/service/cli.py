"""``proximity serve``: run the HTTP API.

Registered in ``proximity/cli.py`` by one line in ``COMMANDS``::

    Command("serve", "run the HTTP API", "proximity.service.cli:setup"),
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_parser", "setup", "run", "main"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP API",
        description="Run the HTTP API (OpenAPI at /docs). Settings also come "
        "from PROXIMITY_* environment variables; flags win.",
    )
    return setup(p)


def setup(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Configure a ``serve`` subparser (the hook of ``proximity.cli.COMMANDS``)."""
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    p.add_argument("--data-dir", default=None, help="embedded mode: where definitions are kept (default ./data)")
    p.add_argument("--redis-url", default=None, help="Redis mode: definitions, state and events in Redis")
    p.add_argument(
        "--mqtt-url", default=None, help="also ingest OwnTracks messages from this MQTT broker (mqtt://host:port)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Redis mode: this many worker processes on one port (default 1)",
    )
    p.add_argument("--demo", action="store_true", default=None, help="load the demo mall and high street")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    p.set_defaults(func=run, run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the settings (env, then flags), and serve until interrupted."""
    import uvicorn
    from pydantic import ValidationError

    from proximity.service.app import create_app
    from proximity.service.http_protocol import CoalescingHttpProtocol
    from proximity.service.malloc import limit_arenas
    from proximity.service.settings import Settings

    overrides = {
        k: v
        for k, v in (
            ("host", args.host),
            ("port", args.port),
            ("data_dir", args.data_dir),
            ("redis_url", args.redis_url),
            ("mqtt_url", args.mqtt_url),
            ("workers", args.workers),
            ("demo", args.demo),
        )
        if v is not None
    }
    if "PROXIMITY_GC_FREEZE" not in os.environ:
        overrides["gc_freeze"] = True
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            if not name:  # a rule over several settings: its message names them
                print(f"proximity serve: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
                continue
            print(f"proximity serve: bad setting {name} (PROXIMITY_{name.upper()}): {err['msg']}", file=sys.stderr)
        return 2
    limit_arenas(settings.malloc_arena_max)  # before uvicorn starts any thread
    app = create_app(settings)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    print(
        f"proximity: serving on http://{settings.host}:{settings.port} "
        f"({'redis ' + settings.redis_url if settings.redis_url else 'embedded, data in ' + str(settings.data_dir)})"
        f"{'; MQTT ' + settings.mqtt_url if settings.mqtt_url else ''}; OpenAPI at /docs",
        file=sys.stderr,
        flush=True,
    )
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": args.log_level,
        "loop": loop,
        "access_log": False,
        "timeout_graceful_shutdown": 3,
        "http": CoalescingHttpProtocol,
        "timeout_keep_alive": settings.keep_alive_s,
    }
    if settings.workers == 1:
        uvicorn.run(app, **common)
        return 0
    # several processes: each builds its app from the environment, so pass the flags on there
    for name, value in overrides.items():
        os.environ[f"PROXIMITY_{name.upper()}"] = str(value)
    uvicorn.run("proximity.service.app:create_app", factory=True, workers=settings.workers, **common)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="proximity")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
