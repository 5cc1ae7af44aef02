"""The figures of the last `mutmut run` (`make mutation`): killed/total and the ratio per module,
the survivors by name, and a non-zero exit when a module is below the goal.

    python tests/mutation_report.py                 # every module [tool.mutmut] mutates
    python tests/mutation_report.py pipeline/ components/store/   # only these
    python tests/mutation_report.py --survivors     # the names alone, for `mutmut run NAME...`

It reads mutmut's own per-file results (mutants/<path>.meta, the exit code of each mutant's
tests). A mutant counts as killed when its tests failed or timed out (mutmut's badge counts the
same way); one mutmut skipped is left out of the total. Survivors, mutants no test reached and
mutants never run count against the ratio: a module whose tests did not run is not a good one.
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
GOAL = 0.90

# mutmut 3's exit codes (mutmut/stats.py: status_by_exit_code), folded into what the ratio needs.
KILLED = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
          255: "timeout", 37: "type check"}  # fmt: skip
NOT_KILLED = {0: "survived", 5: "no tests", 33: "no tests", None: "not run"}
SKIPPED = {34}


@dataclass
class Module:
    path: str
    counts: Counter = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for status, n in self.counts.items() if status != "skipped")

    @property
    def killed(self) -> int:
        return sum(self.counts[s] for s in set(KILLED.values()))

    @property
    def ratio(self) -> float:
        return self.killed / self.total if self.total else 1.0


def mutated_paths(repo: Path) -> list[str]:
    """The files [tool.mutmut] mutates (source_paths narrowed by only_mutate)."""
    conf = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["mutmut"]
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


def read(repo: Path, paths: list[str]) -> list[Module]:
    modules = []
    for path in paths:
        module = Module(path)
        meta = repo / "mutants" / f"{path}.meta"
        if meta.is_file():
            for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                s = status(code)
                module.counts[s] += 1
                if s not in KILLED.values() and s != "skipped":
                    module.survivors.append(f"{name}  ({s})")
        modules.append(module)
    return [m for m in modules if m.counts]  # a file with no function has no mutant


def table(modules: list[Module], goal: float) -> str:
    width = max([len(m.path) for m in modules] + [len("module")])
    lines = [f"{'module':<{width}}  {'killed/total':>12}  {'ratio':>6}  not killed"]
    for m in modules:
        rest = ", ".join(
            f"{n} {s}" for s, n in sorted(m.counts.items()) if s not in KILLED.values() and n
        )
        mark = "" if m.ratio >= goal else "  < goal"
        lines.append(
            f"{m.path:<{width}}  {f'{m.killed}/{m.total}':>12}  {m.ratio:>6.1%}  {rest}{mark}"
        )
    killed, total = sum(m.killed for m in modules), sum(m.total for m in modules)
    lines.append(f"{'all':<{width}}  {f'{killed}/{total}':>12}  {killed / max(total, 1):>6.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="only the modules under these paths")
    parser.add_argument("--goal", type=float, default=GOAL, help="the least ratio per module")
    parser.add_argument("--survivors", action="store_true", help="print the survivors' names")
    parser.add_argument("--repo", type=Path, default=REPO)
    args = parser.parse_args(argv)

    if not (args.repo / "mutants").is_dir():
        print("no mutants/ folder: run `make mutation` first", file=sys.stderr)
        return 2
    paths = [
        p
        for p in mutated_paths(args.repo)
        if not args.prefixes or p.startswith(tuple(args.prefixes))
    ]
    modules = read(args.repo, paths)
    if args.survivors:
        for m in modules:
            for name in m.survivors:
                print(name.split()[0])
        return 0
    print(table(modules, args.goal))
    below = [m for m in modules if m.ratio < args.goal]
    for m in modules:
        if m.survivors:
            print(f"\n{m.path}: {len(m.survivors)} not killed (`mutmut show NAME` shows one)")
            print("\n".join(f"  {name}" for name in m.survivors))
    if below:
        print(f"\nbelow {args.goal:.0%} killed: {', '.join(m.path for m in below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
