"""The CLI reference (docs/CLI.md), generated from the commands themselves so that it cannot
drift.

python -m pipeline.reference          # rewrite the block in docs/CLI.md
python -m pipeline.reference --check  # exit 1 when docs/CLI.md differs (a test does this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

PAGE = Path(__file__).resolve().parent.parent / "docs" / "CLI.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _commands(group: click.Group, ctx: click.Context, prefix: str):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from _commands(command, click.Context(command, parent=ctx, info_name=name), path)
        else:
            yield path, command


def markdown() -> str:
    """One line per command: its name, its arguments and every option it takes."""
    from pipeline.cli import main

    ctx = click.Context(main, info_name="mnist-pipeline")
    lines = []
    for path, command in _commands(main, ctx, "mnist-pipeline"):
        arguments = [p.human_readable_name for p in command.params if isinstance(p, click.Argument)]
        options = sorted(
            "/".join(p.opts + p.secondary_opts)
            for p in command.params
            if isinstance(p, click.Option) and p.name != "help" and not p.hidden
        )  # a hidden option is an old spelling kept for a release (options.renamed)
        head = " ".join([f"`{path}`", *(f"`{a}`" for a in arguments)])
        lines.append(f"- {head}: " + ", ".join(f"`{o}`" for o in options))
    return "\n".join(lines)


def block() -> str:
    return f"{START}\n{markdown()}\n{END}"


def main(argv: list[str]) -> int:
    text = PAGE.read_text()
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    updated = before + block() + after
    if "--check" in argv:
        return 0 if updated == text else 1
    PAGE.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
