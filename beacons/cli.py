"""The ``proximity beacons`` command: ``proximity beacons decode HEX``.

Prints the decoded frame as one JSON object on stdout (``type`` and the frame's fields, ids as
lowercase hex, uuids dashed). A frame that cannot be decoded gives one line on stderr and exit
code 2. Register it in :data:`proximity.cli.COMMANDS` with :func:`configure`, or add it to any
``argparse`` subparsers with :func:`add_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from beacons.errors import FrameError
from beacons.frames import decode

__all__ = ["add_parser", "configure", "main", "run"]

_DESCRIPTION = "Decode BLE beacon advertisements (iBeacon, AltBeacon, Eddystone UID/URL/TLM)."


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``decode`` subcommand to the ``beacons`` parser and set ``run``."""
    sub = parser.add_subparsers(dest="beacons_command", metavar="SUBCOMMAND", required=True)
    d = sub.add_parser(
        "decode",
        help="decode one advertisement, print it as JSON",
        description="Decode one advertisement given in hex (spaces, colons and "
        "a 0x prefix allowed) and print it as one JSON object.",
    )
    d.add_argument(
        "hex", nargs="+", metavar="HEX", help="the advertisement, manufacturer data, service data or Eddystone frame"
    )
    parser.set_defaults(run=run)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``beacons`` command to `subparsers` (from ``add_subparsers``); return it."""
    p = subparsers.add_parser("beacons", help="decode BLE beacon frames", description=_DESCRIPTION)
    configure(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``beacons`` command; return the exit code (0, or 2 on a bad frame)."""
    text = "".join(args.hex)
    try:
        frame = decode(text)
    except FrameError as exc:
        print(f"proximity beacons decode: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(orjson.dumps(frame.to_dict()).decode() + "\n")
    sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``beacons ...`` standalone (``python -m beacons.cli decode HEX``).

    Examples
    --------
    >>> main(["decode", "AAFE 10EB 0367"])
    {"type":"eddystone_url","url":"https://g","tx_power":-21}
    0
    """
    parser = argparse.ArgumentParser(prog="proximity beacons", description=_DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
