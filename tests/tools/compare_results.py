#!/usr/bin/env python3
"""Compare two results.json files number by number (the proof that a refactor changed no result).

    python3 tests/tools/compare_results.py BEFORE.json AFTER.json [--tol 1e-10]

Timings and the run's timestamp are ignored. Prints how many numbers and strings were compared,
how many differ, the worst relative difference and where; exits 1 when a string or the
structure differs or a number differs by more than --tol (relative), else 0.
"""
import json
import math
import sys

# The manifest's run time, command line and input paths differ between any two runs.
IGNORED_KEYS = {"time", "command", "path", "timings"}


def walk(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in IGNORED_KEYS or k.endswith("_seconds"):
                continue
            if k not in a or k not in b:
                out["structure"].append(f"{path}/{k}: only in {'after' if k in b else 'before'}")
                continue
            walk(a[k], b[k], f"{path}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out["structure"].append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", out)
    elif isinstance(a, bool) or isinstance(b, bool):
        out["strings"] += 1
        if a != b:
            out["string_diffs"].append(f"{path}: {a!r} vs {b!r}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        out["numbers"] += 1
        if a == b:
            return
        out["number_diffs"] += 1
        scale = max(abs(a), abs(b))
        rel = abs(a - b) / scale if scale > 0 else 0.0
        if rel > out["worst"][0]:
            out["worst"] = (rel, path, a, b)
    else:
        out["strings"] += 1
        if a != b:
            out["string_diffs"].append(f"{path}: {a!r} vs {b!r}")


def main():
    args = [x for x in sys.argv[1:] if not x.startswith("--")]
    tol = 1e-10
    if "--tol" in sys.argv:
        tol = float(sys.argv[sys.argv.index("--tol") + 1])
        args = [x for x in args if x != sys.argv[sys.argv.index("--tol") + 1]]
    if len(args) != 2:
        print(__doc__)
        return 2
    with open(args[0]) as f:
        before = json.load(f)
    with open(args[1]) as f:
        after = json.load(f)
    out = {"numbers": 0, "number_diffs": 0, "strings": 0, "string_diffs": [], "structure": [],
           "worst": (0.0, "", None, None)}
    walk(before, after, "", out)
    rel, where, a, b = out["worst"]
    print(f"{out['numbers']} numbers, {out['number_diffs']} differ; worst relative difference "
          f"{rel:.3g}" + (f" at {where} ({a!r} vs {b!r})" if where else ""))
    print(f"{out['strings']} strings/flags, {len(out['string_diffs'])} differ; "
          f"{len(out['structure'])} structural differences")
    for line in (out["structure"] + out["string_diffs"])[:20]:
        print("  " + line)
    bad = out["structure"] or out["string_diffs"] or rel > tol
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
