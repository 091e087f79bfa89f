"""Shared compile options for anode's own code."""

ANODE_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]
