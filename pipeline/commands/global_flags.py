"""Flags that mean the same in every command, accepted before the sub-command as after it.

`mnist-pipeline schedule --host URL list` is `mnist-pipeline schedule list --host URL`, as
kubectl takes `kubectl -n NS get pods`. A group moves these flags, when they come before its
sub-command's name, to just after it; the sub-command then checks them as its own (one that
does not take a flag says so, as for any flag it does not know).
"""

from __future__ import annotations

import click

# the connection to Kubeflow, the store's endpoint and the output format: flags with a value
VALUED = frozenset(
    {"--host", "--namespace", "-n", "--token", "--token-file", "--ca-cert", "--s3-endpoint"}
    | {"-o", "--output"}
)
SWITCHES = frozenset({"-v", "-vv", "--verbose"})


def lift(args: list[str], commands) -> list[str]:
    """`args` with the global flags found before the first name in `commands` moved to just
    after it. Anything else before the name, or no name at all: `args` as they were."""
    moved: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in commands:
            return [arg, *moved, *args[i + 1 :]]
        if arg in VALUED and i + 1 < len(args):
            moved += args[i : i + 2]
            i += 2
        elif arg in SWITCHES or arg.split("=", 1)[0] in VALUED - {"-n", "-o"}:
            moved.append(arg)
            i += 1
        else:
            return args  # --help, --version, a typo: for click to answer
    return args


class GlobalFlagsGroup(click.Group):
    """A group that takes the global flags before its sub-command too (see `lift`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, lift(args, self.list_commands(ctx)))
