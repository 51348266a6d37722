"""`python -m study build SPEC --out studies/ID`: build a blinded study folder."""
from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from common import cli as options
from study.build import build_study
from study.folder import open_study


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study build", description=__doc__)
    parser.add_argument("spec", help="study spec (YAML)")
    parser.add_argument("--out", required=True, help="study folder to create, e.g. studies/ID")
    options.add_overwrite(parser, "an existing study folder", dest="force")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tqdm(desc="rendering media", unit="item", leave=False, disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
        out = build_study(args.spec, args.out, overwrite=args.force, progress=progress)
    study = open_study(out)
    print(f"built study {study.id!r} in {out} ({len(study.items)} items, {len(study.versions)} versions, "
          f"{time.perf_counter() - start:.1f} s); private key in {out / 'private'} - never serve it")
    return 0
