"""Keep the README's result tables equal to the produced files.

    python benchmarks/readme_tables.py            # rewrite every marked table from its file
    python benchmarks/readme_tables.py --check    # exit 1 (and name them) if any differs

A table in the README is marked by a line ``<!-- table from results/NAME.md -->``; the lines after it
that start with ``|`` are replaced by the first table of that file (``NAME.md#2``: its second table), and, when the file follows its
table with a legend of short names (``- MMSSL [a]: MMSSL with ...``, written by benchmarks/report.py),
by that legend too. Nothing else in the README is touched: the prose around the tables is written by
hand and says which file each number comes from.
"""

import argparse
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = re.compile(r"^<!-- table from (\S+) -->$")
LEGEND = re.compile(r"^- .+ \[[a-z]+\]: ")


def first_table(path, number=1):
    """The ``number``-th markdown table of ``path`` (its ``|`` lines) and the legend that follows it."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|"))]
    if len(starts) < number:
        raise ValueError(f"{path}: no table {number}")
    start = starts[number - 1]
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    block = lines[start:end]
    after = end + 1 if end < len(lines) and not lines[end].strip() else end
    legend = []
    while after < len(lines) and LEGEND.match(lines[after]):
        legend.append(lines[after])
        after += 1
    return block + ([""] + legend if legend else [])


def refresh(text, repo=REPO):
    """``text`` with every marked table replaced; returns (new text, names of the tables that changed)."""
    lines = text.splitlines()
    out, changed, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        mark = MARK.match(line)
        if not mark:
            continue
        old_start = i
        while i < len(lines) and lines[i].startswith("|"):
            i += 1
        if i + 1 < len(lines) and not lines[i].strip() and LEGEND.match(lines[i + 1]):  # the old legend
            i += 1
            while i < len(lines) and LEGEND.match(lines[i]):
                i += 1
        name, _, number = mark.group(1).partition("#")
        new = first_table(os.path.join(repo, name), int(number or 1))
        if lines[old_start:i] != new:
            changed.append(mark.group(1))
        out.extend(new)
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs")
    parser.add_argument("--readme", default=os.path.join(REPO, "README.md"))
    args = parser.parse_args(argv)
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    new, changed = refresh(text, os.path.dirname(os.path.abspath(args.readme)))
    if args.check:
        if changed:
            print("README tables differ from: " + ", ".join(changed) + " (run python benchmarks/readme_tables.py)")
            return 1
        return 0
    if changed:
        sys.path.insert(0, REPO)
        from recbole_mmssl.atomic_write import atomic_file

        with atomic_file(args.readme, "w", encoding="utf-8") as f:
            f.write(new)
    print("updated: " + (", ".join(changed) if changed else "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
