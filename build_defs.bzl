"""Shared compile options for anode's own code.

Warnings-as-errors apply only when anode is the main workspace: its .bazelrc
sets `--define=anode_strict=1`, which selects //:strict. A project that takes
anode as an external repository (`@anode//autodiff`) does not set it, so our
sources compile there with that project's own flags and compiler (gcc or
clang), never failing its build on a new compiler's new warning.
"""

ANODE_COPTS = select({
    "//:strict": [
        "-Wall",
        "-Wextra",
        "-Werror",
    ],
    "//conditions:default": [],
})
