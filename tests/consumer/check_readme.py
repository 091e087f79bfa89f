#!/usr/bin/env python3
"""Checks that README.md shows the consumer's files verbatim, so the reuse
section is what CI builds and runs. Run from anywhere; exits 1 naming the file
whose copy in the README differs."""
import pathlib
import sys

here = pathlib.Path(__file__).resolve().parent
readme = (here.parent.parent / "README.md").read_text()


def body(name):
    """The file without its leading '#' comment lines (BUILD's says why it exists)."""
    lines = (here / name).read_text().rstrip("\n").split("\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines)


bad = [name for name in ("BUILD", "mlp.cc", "ode_fit.cc") if body(name) not in readme]
for name in bad:
    print(f"README.md does not show tests/consumer/{name} verbatim", file=sys.stderr)
sys.exit(1 if bad else 0)
