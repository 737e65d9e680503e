"""Commit the support matrix the architecture test measured and render it into README.md.

    python -m pytest -m slow tests/test_architectures.py    # measures, writes test-artifacts/
    python scripts/support_matrix.py --update-readme         # commits the JSON, rewrites README

Without ``--update-readme`` it prints the markdown table. ``--check`` exits 1 when README.md's
block differs from the committed JSON (what tests/test_support_matrix.py checks).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.models.support_matrix import (
    ARTIFACT,
    COMMITTED,
    README,
    UPDATE_COMMAND,
    Matrix,
    readme_block,
    render_markdown,
    with_block,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--update-readme", action="store_true", help="commit the JSON and rewrite README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    parser.add_argument(
        "--from", dest="source", type=Path, default=ARTIFACT, help="measured JSON (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.check:
        block = readme_block(README.read_text())
        if block != render_markdown(Matrix.load(COMMITTED)):
            print(f"README.md's support matrix differs from {COMMITTED.name}: run `{UPDATE_COMMAND}`")
            return 1
        print("README.md's support matrix is up to date")
        return 0
    if args.update_readme:
        if args.source.is_file() and args.source.resolve() != COMMITTED.resolve():
            shutil.copyfile(args.source, COMMITTED)
            print(f"{args.source} -> {COMMITTED}")
        text = README.read_text()
        if readme_block(text) is None:
            print("README.md has no support-matrix markers", file=sys.stderr)
            return 1
        README.write_text(with_block(text, render_markdown(Matrix.load(COMMITTED))))
        print(f"updated {README}")
        return 0
    source = args.source if args.source.is_file() else COMMITTED
    print(render_markdown(Matrix.load(source)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
