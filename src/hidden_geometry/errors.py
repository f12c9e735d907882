"""Errors that users see as one line.

`InputError` is raised for anything the user can fix (a file, a line, a config key, a value). Its message is a
single line that names the problem; command-line entry points print it and exit with status 2, and workflow
scripts let it propagate so Snakemake shows it and removes the rule's outputs.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with the user's input, config or files, described in one line."""

    def __init__(self, message: str):
        # Keep the message on one line whatever the caller passed: it ends up in logs and terminals.
        super().__init__(" ".join(str(message).split()))
