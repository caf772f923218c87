"""What the Python benchmarks share: their --json option and their output.

Each prints its result as JSON and, with `--json FILE`, writes it there too
(tests/bench/measure.sh collects the files for report.py).
"""

import json


def json_path(argv):
    """The FILE of `--json FILE` in argv, or None."""
    return argv[argv.index("--json") + 1] if "--json" in argv else None


def emit(result, out):
    """Prints result as JSON and writes it to out unless out is None; returns 0, main's exit status."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    return 0
