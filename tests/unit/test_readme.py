"""Every `mnist-pipeline ...` command the README (and docs/) shows exists, with the flags it
shows: in code blocks and in inline code, the sub-commands are walked as click walks them and
each flag must be one the command offers in --help today (not a hidden old spelling)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`((?:\.venv/bin/)?mnist-pipeline [^`]+)`")


def shown_commands(text: str) -> list[str]:
    """The `mnist-pipeline` invocations in `text`: from code blocks (one per line, comments
    and continuation lines joined) and from inline code spans."""
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            at = line.find("mnist-pipeline ")
            quoted = at > 0 and line[at - 1] == "`"  # prose in a listing: inline code's job
            if at >= 0 and not quoted and not line.lstrip().startswith("#"):
                found.append(line[at:].split("  #")[0].split(" # ")[0])
    found += [m.removeprefix(".venv/bin/") for m in INLINE.findall(text)]
    return found


def words(command: str) -> list[str]:
    """The command's words; the README's notation ([optional], a|b, …, \\|) reduced to the
    first alternative of each word."""
    command = command.replace("\\|", "|").replace("…", " ").replace("[", " ").replace("]", " ")
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    return [t.split("|")[0] for t in tokens if t and t.split("|")[0]]


def walk(tokens: list[str]) -> tuple[click.Command, list[str]]:
    """The command the words name (as click dispatches them) and the flags among them."""
    command, flags = main, []
    ctx = click.Context(main, info_name="mnist-pipeline")
    for token in tokens[1:]:
        if token.startswith("-"):
            flags.append(token.split("=")[0])
        elif isinstance(command, click.Group):
            sub = command.get_command(ctx, token)
            if sub is None and "create" in command.list_commands(ctx):
                sub = command.get_command(ctx, "create")  # `schedule --cron ...`
            if sub is not None:
                command = sub
    if isinstance(command, click.Group) and "create" in command.list_commands(ctx) and flags:
        command = command.get_command(ctx, "create")
    return command, flags


def offered(command: click.Command) -> set[str]:
    names = {"-h", "--help"}
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            names.update(param.opts + param.secondary_opts)
    return names


CASES = [(page.name, shown) for page in PAGES for shown in shown_commands(page.read_text())]


def test_the_pages_show_commands():
    assert len(CASES) >= 20 and any(name == "README.md" for name, _ in CASES)


@pytest.mark.parametrize("page, shown", CASES, ids=[f"{p}: {s[:60]}" for p, s in CASES])
def test_each_command_shown_exists_with_its_flags(page, shown):
    command, flags = walk(words(shown))
    assert command is not main, f"{page}: `{shown}` names no sub-command"
    unknown = [flag for flag in flags if flag not in offered(command)]
    assert not unknown, f"{page}: `{shown}`: {command.name} has no {', '.join(unknown)}"


def test_a_flag_that_does_not_exist_is_caught():
    command, flags = walk(words("mnist-pipeline schedule --cron '0 0 2 * * *' --job-name x"))
    assert command.name == "create" and "--job-name" not in offered(command)
    command, flags = walk(words("mnist-pipeline ui --host 0.0.0.0"))
    assert "--host" in flags and "--host" not in offered(command)


LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.M)


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page (text outside code blocks)."""
    text = FENCE.sub("", text)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in HEADING.findall(text)
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_between_the_pages_resolves(page):
    """A relative link names a file of the repository, and an anchor a heading of its page
    (reference sections moved to docs/ keep their readers)."""
    text = page.read_text()
    broken = []
    for target in LINK.findall(FENCE.sub("", text)):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (
            anchor and file.suffix == ".md" and anchor not in anchors(file.read_text())
        ):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_the_link_check_catches_a_broken_anchor():
    assert "a-web-page-to-try-the-model" in anchors("## A web page to try the model\n")
    assert "pipeline-parameters" not in anchors("## Parameters\n```\n## Pipeline parameters\n```\n")
