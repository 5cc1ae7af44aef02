"""The figures of the last `mutmut run` (`make mutation`): killed/total and the ratio per module,
the survivors by name, and a non-zero exit when a module is below the goal.

    python tests/mutation_report.py                 # every module [tool.mutmut] mutates
    python tests/mutation_report.py pipeline/ components/store/   # only these
    python tests/mutation_report.py --survivors     # the names alone, for `mutmut run NAME...`
    python tests/mutation_report.py --diffs         # and what each survivor changed

It reads mutmut's own per-file results (mutants/<path>.meta, the exit code of each mutant's
tests). A mutant counts as killed when its tests failed or timed out (mutmut's badge counts the
same way); one mutmut skipped is left out of the total. Survivors, mutants no test reached and
mutants never run count against the ratio: a module whose tests did not run is not a good one.

A survivor that cannot change behaviour (an equivalent mutant) is listed, with the text of its
change and why, in tests/mutation_equivalents/<area>.toml (`[[equivalent]]` tables: name,
change, why) or under [tool.mutation-report] `equivalent` in pyproject.toml; it is then left
out of the total and shown apart. Each entry is checked against the mutant's code in mutants/:
when the code has moved on and the name now stands for another change, the entry is reported
as stale and the mutant counts again.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
EQUIVALENTS = Path(__file__).resolve().parent / "mutation_equivalents"
GOAL = 0.90

# mutmut 3's exit codes (mutmut/stats.py: status_by_exit_code), folded into what the ratio needs.
KILLED = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
          255: "timeout", 37: "type check"}  # fmt: skip
NOT_KILLED = {0: "survived", 5: "no tests", 33: "no tests", None: "not run"}
SKIPPED = {34}
LEFT_OUT = ("skipped", "equivalent")


@dataclass
class Module:
    path: str
    counts: Counter = field(default_factory=Counter)
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (name, status)
    equivalent: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for status, n in self.counts.items() if status not in LEFT_OUT)

    @property
    def killed(self) -> int:
        return sum(self.counts[s] for s in set(KILLED.values()))

    @property
    def ratio(self) -> float:
        return self.killed / self.total if self.total else 1.0


def settings(repo: Path, equivalents: Path = EQUIVALENTS) -> tuple[dict, list[dict]]:
    """([tool.mutmut], the equivalent mutants' entries: pyproject's and those of the files in
    `equivalents`)."""
    tool = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]
    entries = list(tool.get("mutation-report", {}).get("equivalent", []))
    for path in sorted(equivalents.glob("*.toml")):
        entries += tomllib.loads(path.read_text()).get("equivalent", [])
    return tool["mutmut"], entries


def mutated_paths(conf: dict, repo: Path) -> list[str]:
    """The files [tool.mutmut] mutates (source_paths narrowed by only_mutate)."""
    files = sorted(
        str(p.relative_to(repo))
        for root in conf["source_paths"]
        for p in (repo / root).rglob("*.py")
        if "__pycache__" not in p.parts
    )
    keep = conf.get("only_mutate") or ["*"]
    drop = conf.get("do_not_mutate", [])
    return [
        f
        for f in files
        if any(fnmatch.fnmatch(f, p) for p in keep) and not any(fnmatch.fnmatch(f, p) for p in drop)
    ]


def status(exit_code: int | None) -> str:
    if exit_code in SKIPPED:
        return "skipped"
    return KILLED.get(exit_code) or NOT_KILLED.get(exit_code) or "suspicious"


def dotted(path: str) -> str:
    """The module mutmut names a file's mutants after (a package's own: without __init__)."""
    return path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def mutant_source(repo: Path, path: str, name: str) -> str:
    """The code of mutant `name` as mutmut wrote it into mutants/<path> (its .spans index)."""
    function = name.removeprefix(dotted(path) + ".")
    spans = json.loads((repo / "mutants" / f"{path}.spans").read_text())["spans"]
    if function not in spans:
        return ""
    start, end = spans[function]
    lines = (repo / "mutants" / path).read_text().splitlines()
    return "\n".join(lines[start - 1 : end])


def equivalent_here(repo: Path, path: str, entries: list[dict]) -> tuple[set[str], list[str]]:
    """(the names of this file's equivalent mutants whose change is still what the entry says,
    a line for each entry that no longer is)."""
    module = dotted(path)
    good, stale = set(), []
    for entry in entries:
        name = entry["name"]
        if not name.startswith(module + ".") or "." in name[len(module) + 1 :]:
            continue
        if entry["change"] in mutant_source(repo, path, name):
            good.add(name)
        else:
            stale.append(f"{name}: no longer {entry['change']!r}; update or remove its entry")
    return good, stale


def read(repo: Path, paths: list[str], entries: list[dict]) -> tuple[list[Module], list[str]]:
    modules, stale = [], []
    for path in paths:
        module = Module(path)
        meta = repo / "mutants" / f"{path}.meta"
        if meta.is_file():
            equivalent, out_of_date = equivalent_here(repo, path, entries)
            stale += out_of_date
            for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                s = status(code)
                if s == "survived" and name in equivalent:
                    s = "equivalent"
                    module.equivalent.append(name)
                module.counts[s] += 1
                if s not in KILLED.values() and s not in LEFT_OUT:
                    module.survivors.append((name, s))
        modules.append(module)
    return [m for m in modules if m.counts], stale  # a file with no function has no mutant


def table(modules: list[Module], goal: float) -> str:
    width = max([len(m.path) for m in modules] + [len("module")])
    lines = [f"{'module':<{width}}  {'killed/total':>12}  {'ratio':>6}  not counted; not killed"]
    for m in modules:
        apart = ", ".join(f"{m.counts[s]} {s}" for s in LEFT_OUT if m.counts[s]) or "-"
        rest = ", ".join(
            f"{n} {s}"
            for s, n in sorted(m.counts.items())
            if s not in KILLED.values() and s not in LEFT_OUT and n
        )
        mark = "" if m.ratio >= goal else "  < goal"
        lines.append(
            f"{m.path:<{width}}  {f'{m.killed}/{m.total}':>12}  {m.ratio:>6.1%}  "
            f"{apart}; {rest or '-'}{mark}"
        )
    killed, total = sum(m.killed for m in modules), sum(m.total for m in modules)
    lines.append(f"{'all':<{width}}  {f'{killed}/{total}':>12}  {killed / max(total, 1):>6.1%}")
    return "\n".join(lines)


def diff(name: str, repo: Path) -> str:
    """What the mutant changed, as `mutmut show` prints it (only the -/+ lines)."""
    import subprocess

    shown = subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), "show", name],
        cwd=repo, capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return "\n".join(
        f"      {line}"
        for line in shown.splitlines()
        if line[:1] in "-+" and not line.startswith(("---", "+++"))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="only the modules under these paths")
    parser.add_argument("--goal", type=float, default=GOAL, help="the least ratio per module")
    parser.add_argument("--survivors", action="store_true", help="print the survivors' names")
    parser.add_argument("--diffs", action="store_true", help="show what each survivor changed")
    parser.add_argument("--repo", type=Path, default=REPO, help="where mutants/ is")
    parser.add_argument(
        "--equivalents", type=Path, default=EQUIVALENTS, help="the equivalent mutants' files"
    )
    args = parser.parse_args(argv)

    if not (args.repo / "mutants").is_dir():
        print("no mutants/ folder: run `make mutation` first", file=sys.stderr)
        return 2
    conf, entries = settings(args.repo, args.equivalents)
    paths = [
        p for p in mutated_paths(conf, args.repo) if p.startswith(tuple(args.prefixes or [""]))
    ]
    modules, stale = read(args.repo, paths, entries)
    if args.survivors:
        print("\n".join(name for m in modules for name, _ in m.survivors))
        return 0
    print(table(modules, args.goal))
    for m in modules:
        if m.survivors:
            print(f"\n{m.path}: {len(m.survivors)} not killed (`mutmut show NAME` shows one)")
            for name, s in m.survivors:
                print(f"  {name}  ({s})")
                if args.diffs and s == "survived":
                    print(diff(name, args.repo))
        if m.equivalent:
            print(f"\n{m.path}: {len(m.equivalent)} equivalent, not counted")
    for line in stale:
        print(f"stale equivalent entry: {line}")
    below = [m for m in modules if m.ratio < args.goal]
    if below:
        print(f"\nbelow {args.goal:.0%} killed: {', '.join(m.path for m in below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
