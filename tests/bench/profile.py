#!/usr/bin/python3
"""Profiles the run cycle under callgrind and reports what one cycle costs,
in instructions (Ir): in total, per object file (the extension, SQLite, libc,
...) and per function. Instruction counts do not depend on the machine's
load, so the extension/handwritten ratio here is the noise-free companion of
cycle_bench's timings.

  /usr/bin/python3 tests/bench/profile.py MEMORY_BENCH EXTENSION [--brief] [--json FILE]

Each variant (extension, handwritten, and handwritten+calls: the hand-written
cycle plus three calls of a trivial SQL function, the floor of any design
that offers the cycle as three SQL functions) runs under callgrind twice, for N1 and
N2 cycles (memory_bench's `loop` mode); the difference divided by N2 - N1 is
the cost of one cycle, without the setup (migration, preparation) that both
runs share.
"""
import os
import re
import subprocess
import sys
import tempfile

from bench_json import emit, json_path

LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*?)\s*(?:\[(.*)\])?\s*$")


def profile(memory_bench, extension, variant, cycles, directory):
    out = os.path.join(directory, f"callgrind.{variant}.{cycles}")
    env = dict(os.environ, RUNS_BENCH_DIR=directory)
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         memory_bench, extension, "loop", str(cycles), variant],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", out],
        check=True, capture_output=True, text=True).stdout
    total = 0
    functions = {}
    for line in text.splitlines():
        if line.rstrip().endswith("PROGRAM TOTALS"):
            total = int(line.split()[0].replace(",", ""))
            continue
        match = LINE.match(line)
        if not match or ":" not in match.group(2):
            continue
        ir = int(match.group(1).replace(",", ""))
        name = match.group(2).split(":", 1)[1]
        obj = os.path.basename(match.group(3) or "?")
        functions[(obj, name)] = functions.get((obj, name), 0) + ir
    return total, functions


def group(obj):
    if obj.startswith("runs.so"):
        return "extension (runs.so)"
    if obj.startswith("libsqlite3"):
        return "SQLite (libsqlite3)"
    if obj.startswith("libc.") or obj.startswith("libc-"):
        return "libc"
    if obj.startswith("libstdc++"):
        return "libstdc++"
    if obj.startswith("ld-linux"):
        return "dynamic loader"
    if obj.startswith("memory_bench"):
        return "host program"
    return obj


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    memory_bench, extension = argv[1], argv[2]
    brief = "--brief" in argv
    out = json_path(argv)
    n1, n2 = (20, 40) if brief else (500, 1500)
    result = {"cycles": [n1, n2]}
    with tempfile.TemporaryDirectory(prefix="runs-profile-",
                                     dir=os.environ.get("RUNS_BENCH_DIR", ".")) as directory:
        for variant in ("extension", "handwritten", "handwritten+calls"):
            total1, functions1 = profile(memory_bench, extension, variant, n1, directory)
            total2, functions2 = profile(memory_bench, extension, variant, n2, directory)
            per = {}
            for key in set(functions1) | set(functions2):
                delta = (functions2.get(key, 0) - functions1.get(key, 0)) / (n2 - n1)
                if delta > 0.5:
                    per[key] = delta
            by_object = {}
            for (obj, _), ir in per.items():
                by_object[group(obj)] = by_object.get(group(obj), 0) + ir
            top = sorted(per.items(), key=lambda item: -item[1])[:25]
            own = sorted(((name, ir) for (obj, name), ir in per.items() if obj.startswith("runs.so")),
                         key=lambda item: -item[1])
            result[variant] = {
                "ir_per_cycle": (total2 - total1) / (n2 - n1),
                "own_functions": [{"function": name, "ir": ir} for name, ir in own],
                "by_object": dict(sorted(by_object.items(), key=lambda item: -item[1])),
                "top_functions": [{"object": group(obj), "function": name, "ir": ir}
                                  for (obj, name), ir in top],
            }
    hand = result["handwritten"]["ir_per_cycle"]
    result["ratio"] = result["extension"]["ir_per_cycle"] / hand
    result["ratio_calls_floor"] = result["handwritten+calls"]["ir_per_cycle"] / hand
    return emit(result, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
