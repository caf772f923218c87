#!/usr/bin/python3
"""Prints the markdown tables of docs/performance.md from the results that
tests/bench/measure.sh wrote:

  /usr/bin/python3 tests/bench/report.py RESULTS [--into FILE]

With --into, the tables replace what FILE holds between the lines
<!-- results: begin --> and <!-- results: end --> (docs/performance.md),
instead of going to stdout, and the busy handler comparison (item 7,
busy.jsonl) what it holds between <!-- busy results: begin --> and
<!-- busy results: end -->. A block whose results are missing (run.sh
--busy-only measures item 7 alone) is left as it was. Every ratio is extension / baseline of medians measured in the same run.
"""
import json
import os
import statistics
import sys


def load(results, name):
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        if name.endswith(".jsonl"):
            return [json.loads(line) for line in f if line.strip()]
        return json.load(f)


def base_name(run_name):
    parts = [p for p in run_name.split("/")
             if not p.startswith(("iterations:", "min_time:", "real_time", "repeats:"))]
    return "/".join(parts)


def medians(cycle):
    """{name: (real_us, cpu_us, repetitions)} from Google Benchmark's JSON."""
    out = {}
    counts = {}
    for b in cycle["benchmarks"]:
        name = base_name(b.get("run_name", b["name"]))
        if b.get("run_type") == "iteration":
            counts[name] = counts.get(name, 0) + 1
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
        if b.get("run_type") == "aggregate" or name not in out:
            out[name] = (b["real_time"] * scale, b["cpu_time"] * scale)
    return {name: (real, cpu, counts.get(name, 1)) for name, (real, cpu) in out.items()}


def us(value):
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine_section(m):
    lines = ["### Machine", ""]
    if not m:
        return lines + ["(machine.json missing)", ""]
    lines += [
        f"- run {m.get('date', '?')}, commit {m['commit']}",
        f"- {m['cpu']}, {m['cpus']} CPUs (shared with other work), {m['memory_gib']} GiB,"
        f" {m['os']}, Linux {m['kernel']}, {m['filesystem']}",
        f"- SQLite {m['sqlite']} (Debian's libsqlite3), Python {m['python']},"
        f" Google Benchmark {m['google_benchmark']}",
        f"- {m['compiler']}, {m['build_type']} `{m['flags']}`",
        "- load average at the start: " + ", ".join(f"{x:.2f}" for x in m["load_average"]),
        "",
    ]
    return lines


def pair_medians(cycle, name):
    """Medians over the repetitions of a paired benchmark's counters."""
    runs = [b for b in cycle["benchmarks"]
            if b.get("run_type") == "iteration" and base_name(b.get("run_name", b["name"])) == name]
    if not runs:
        return None
    keys = ("extension_us", "handwritten_us", "ratio_wall", "extension_cpu_us",
            "handwritten_cpu_us", "ratio_cpu")
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["repetitions"] = len(runs)
    out["ratio_wall_range"] = (min(r["ratio_wall"] for r in runs), max(r["ratio_wall"] for r in runs))
    return out


def cycle_section(cycle, profile):
    lines = ["### 1. Cycle cost in process (goal: extension within 5% of the hand-written floor)", "",
             "start_run + mark_run_running + complete_run against the same SQL over the C API"
             " with reused prepared statements; file databases, WAL. One cycle of each in turn;"
             " time per cycle and the ratio, medians over the repetitions.", "",
             "| synchronous | extension µs | hand-written µs | ratio (wall) | ratio range"
             " | extension CPU µs | hand-written CPU µs | ratio (CPU) | repetitions |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sync in ("NORMAL", "FULL"):
        p = pair_medians(cycle, f"cycle/sync:{sync}") if cycle else None
        if not p:
            continue
        low, high = p["ratio_wall_range"]
        lines.append(f"| {sync} | {us(p['extension_us'])} | {us(p['handwritten_us'])} |"
                     f" **{p['ratio_wall']:.3f}** | {low:.3f}–{high:.3f} |"
                     f" {us(p['extension_cpu_us'])} | {us(p['handwritten_cpu_us'])} |"
                     f" **{p['ratio_cpu']:.3f}** | {p['repetitions']} |")
    if profile:
        e, h = profile["extension"], profile["handwritten"]
        c = profile["handwritten+calls"]
        lines += ["", f"Instructions per cycle under callgrind (no noise; synchronous=NORMAL):"
                  f" extension {e['ir_per_cycle']:,.0f}, hand-written {h['ir_per_cycle']:,.0f},"
                  f" ratio **{profile['ratio']:.3f}**. The hand-written cycle plus three"
                  f" statements `SELECT runs_version()` (what calling any three SQL functions"
                  f" costs): {c['ir_per_cycle']:,.0f}, ratio {profile['ratio_calls_floor']:.3f}."]
    return lines + [""]


def python_section(py):
    lines = ["### 2. The cycle from Python (goal: the extension no slower than the usual code)", "",
             "Debian's /usr/bin/python3, stdlib sqlite3. The application code: an"
             " `immediate_transaction()` context manager around the active-run query and the"
             " INSERT, then two guarded UPDATEs.", "",
             "| synchronous | extension µs | application µs | ratio (wall) | ratio range |"
             " ratio (CPU) | rounds |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    if py:
        for sync in ("NORMAL", "FULL"):
            r = py["results"].get(f"sync:{sync}")
            if not r:
                continue
            lines.append(f"| {sync} | {us(r['extension']['wall_us_median'])} |"
                         f" {us(r['application']['wall_us_median'])} | **{r['ratio_wall']:.3f}** |"
                         f" {r['ratio_wall_range'][0]:.3f}–{r['ratio_wall_range'][1]:.3f} |"
                         f" **{r['ratio_cpu']:.3f}** | {r['rounds']} |")
    return lines + [""]


def active_run_section(cycle):
    m = medians(cycle) if cycle else {}
    sizes = sorted({int(name.split("/")[1].split(":")[1]) for name in m
                    if name.startswith("active_run/")})
    lines = ["### 3. active_run() as the history grows (goal: ratio under 1.5)", "",
             "One active run plus N finished runs. Time per query, median.", ""]
    if len(sizes) < 2:
        return lines + ["(no data)", ""]
    small, big = sizes[0], sizes[-1]
    lines += [f"| query | {small:,} finished µs | {big:,} finished µs | ratio |",
              "|---|---:|---:|---:|"]
    usual = "`status IN ('pending','running') ORDER BY created_at DESC LIMIT 1`"
    for variant, label in (("extension", "`SELECT active_run()`"),
                           ("usual_query", usual + ", which runs_one_active serves"),
                           ("unindexed", usual + " `FROM runs NOT INDEXED`")):
        a = m.get(f"active_run/history:{small}/{variant}")
        b = m.get(f"active_run/history:{big}/{variant}")
        if a and b:
            lines.append(f"| {label} | {us(a[0])} | {us(b[0])} | **{b[0] / a[0]:.2f}** |")
    return lines + [""]


def contention_section(rows):
    lines = ["### 4. Contention (processes started with fork+exec, busy_timeout 5000)", "",
             "Each process starts and finishes runs as fast as it can. *wait* is the duration of"
             " every call (start_run, refusals included, and the finishing updates); *BUSY* counts calls that ended in"
             " SQLITE_BUSY (start_run / the finishing updates); *wins* the runs started per"
             " process, fewest–most.", "",
             "| keys | processes | variant | runs/s | start_run/s | wait p50 ms | p99 ms |"
             " max ms | BUSY | wins per process |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows or []:
        lines.append(f"| {r['keys']} | {r['processes']} | {r['variant']} | {r['wins_per_s']:,.0f} |"
                     f" {r['calls_per_s']:,.0f} | {r['wait_p50_ms']:.3f} | {r['wait_p99_ms']:.2f} |"
                     f" {r['wait_max_ms']:,.0f} | {r['busy']} / {r['finish_busy']} |"
                     f" {r['min_wins']:,}–{r['max_wins']:,} |")
    if rows:
        total = sum(r["calls"] for r in rows)
        busy = sum(r["busy"] + r["finish_busy"] for r in rows)
        lines += ["", f"{busy} SQLITE_BUSY escapes in {total:,} start_run calls"
                  f" ({rows[0]['seconds']:g} s per row)."]
    return lines + [""]


def memory_section(conns, cycles):
    lines = ["### 5. Memory", ""]
    if conns:
        plain = conns["plain"]["heap_per_connection"]
        lines += [f"Heap per connection ({conns['connections']} connections open at once, each"
                  " having read the same pages; glibc heap and sqlite3_memory_used()):", "",
                  "| connection | heap bytes | of which SQLite | more than plain |",
                  "|---|---:|---:|---:|"]
        for key, label in (("plain", "plain, nothing prepared"),
                           ("handwritten", "hand-written cycle prepared and run once"),
                           ("extension_loaded", "extension loaded, not called"),
                           ("extension_cycled", "extension loaded, one cycle run")):
            row = conns[key]
            lines.append(f"| {label} | {row['heap_per_connection']:,} |"
                         f" {row['sqlite_per_connection']:,} |"
                         f" {row['heap_per_connection'] - plain:,} |")
        lines.append("")
    if cycles:
        samples = cycles["samples"]
        warm = samples[1] if len(samples) > 1 else samples[0]
        last = samples[-1]
        lines += [f"{cycles['cycles']:,} cycles on one connection (file database, WAL,"
                  " synchronous=OFF):", "",
                  "| after cycles | RSS KiB | heap bytes | SQLite bytes |", "|---:|---:|---:|---:|"]
        for s in (samples[0], warm, samples[len(samples) // 2], last):
            lines.append(f"| {s['cycles']:,} | {s['rss_kib']:,} | {s['heap']:,} | {s['sqlite']:,} |")
        lines += ["", f"From {warm['cycles']:,} to {last['cycles']:,} cycles: RSS"
                  f" {last['rss_kib'] - warm['rss_kib']:+,} KiB, heap {last['heap'] - warm['heap']:+,}"
                  " bytes.", ""]
    return lines


def profile_section(profile):
    lines = ["### 6. Profile of one cycle (callgrind, instructions per cycle)", ""]
    if not profile:
        return lines + ["(valgrind not installed: no profile)", ""]
    e, h, c = profile["extension"], profile["handwritten"], profile["handwritten+calls"]
    for v in (e, h, c):  # objects callgrind could not name
        other = sum(v["by_object"].pop(g, 0) for g in ("?", "???"))
        if other:
            v["by_object"]["other (unnamed)"] = other
    lines += ["| where | extension | hand-written | hand-written + 3 function calls |",
              "|---|---:|---:|---:|"]
    for group in sorted(set(e["by_object"]) | set(h["by_object"]),
                        key=lambda g: -e["by_object"].get(g, 0)):
        a, b, d = (v["by_object"].get(group, 0) for v in (e, h, c))
        if a >= 50 or b >= 50:
            lines.append(f"| {group} | {a:,.0f} | {b:,.0f} | {d:,.0f} |")
    lines.append(f"| **total** | **{e['ir_per_cycle']:,.0f}** | **{h['ir_per_cycle']:,.0f}** |"
                 f" **{c['ir_per_cycle']:,.0f}** |")
    lines += ["", "The extension's own functions (runs.so) per cycle:", "", "| function | Ir |",
              "|---|---:|"]
    for f in e["own_functions"]:
        if f["ir"] >= 10:
            lines.append(f"| `{f['function'].replace('(anonymous namespace)::', '').split('(')[0][:70]}` | {f['ir']:,.0f} |")
    return lines + [""]


def busy_section(rows, machine, theirs_name="extension", ours_name="extension+runs_busy_timeout",
                 title="### 7. Waiting for the write lock: SQLite's busy handler against"
                       " runs_busy_timeout(5000)"):
    """Item 7: SQLite's handler against runs_busy_timeout(5000), per
    configuration, over the rounds: throughput ratio (median of the rounds'
    ratios), waits, escapes and wins per process. The C workers' variants
    by default; the Python workers' with their names."""
    if not rows:
        return []
    seconds = rows[0]["seconds"]
    rounds = max(r.get("round", 1) for r in rows)
    lines = [title, ""]
    if machine:
        lines += [f"Run {machine.get('date', '?')}, commit {machine['commit']}, {machine['cpus']} CPUs"
                  " shared with other work, load average at the start "
                  + ", ".join(f"{x:.2f}" for x in machine["load_average"]) + ".", ""]
    lines += [f"Each configuration ran {seconds:g} s per handler and round, {rounds} round(s), the two"
              " handlers in turn (in reverse order every other round). *idle*: nothing else of ours"
              " running; *busy*: one more process spinning on a CPU. *wait* is the duration of every"
              " call (start_run, mark_run_running, complete_run), over all rounds; *ratio* the"
              " median over the rounds of runs_busy_timeout's runs/s divided by SQLite's;"
              " *BUSY* the calls that ended in SQLITE_BUSY; *wins* the runs started per process,"
              " fewest–most in any round.", "",
              "| load | keys | processes | SQLite runs/s | runs_busy_timeout runs/s | ratio |"
              " p50 ms | p99 ms | max ms | BUSY | wins per process |",
              "|---|---|---:|---:|---:|---:|---|---|---|---|---|"]
    configs = {}
    for r in rows:
        configs.setdefault((r.get("load", "idle"), r["keys"], r["processes"]), {}).setdefault(
            r["variant"], []).append(r)
    escapes = {theirs_name: 0, ours_name: 0}
    calls = dict(escapes)
    for (load, keys, processes), by in sorted(configs.items(),
                                              key=lambda i: (i[0][0] != "idle", i[0][1], i[0][2])):
        ours, theirs = by.get(ours_name, []), by.get(theirs_name, [])
        if not ours or not theirs:
            continue
        ratios = []
        for a in ours:
            b = [t for t in theirs if t.get("round", 1) == a.get("round", 1)]
            if b and b[0]["wins_per_s"] > 0:
                ratios.append(a["wins_per_s"] / b[0]["wins_per_s"])
        ratio = f"**{statistics.median(ratios):.2f}**" if ratios else "–"

        def both(f):
            return f"{f(theirs)} / {f(ours)}"

        def p(key):
            return lambda v: f"{statistics.median(x[key] for x in v):.2f}"

        def mx(v):
            return f"{max(x['wait_max_ms'] for x in v):,.0f}"

        def busy(v):
            return str(sum(x["busy"] + x["finish_busy"] for x in v))

        def wins(v):
            return f"{min(x['min_wins'] for x in v):,}–{max(x['max_wins'] for x in v):,}"

        for name, v in ((theirs_name, theirs), (ours_name, ours)):
            escapes[name] += int(busy(v))
            calls[name] += sum(x["calls"] for x in v)
        lines.append(f"| {load} | {keys} | {processes} |"
                     f" {statistics.median(x['wins_per_s'] for x in theirs):,.0f} |"
                     f" {statistics.median(x['wins_per_s'] for x in ours):,.0f} | {ratio} |"
                     f" {both(p('wait_p50_ms'))} | {both(p('wait_p99_ms'))} | {both(mx)} |"
                     f" {both(busy)} | {wins(theirs)} / {wins(ours)} |")
    lines += ["", "Each cell with two values: SQLite's handler / runs_busy_timeout(5000).",
              f"SQLITE_BUSY escapes: SQLite's handler {escapes[theirs_name]} in"
              f" {calls[theirs_name]:,} start_run calls, runs_busy_timeout"
              f" {escapes[ours_name]} in {calls[ours_name]:,}.", ""]
    return lines


BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"
BUSY_BEGIN, BUSY_END = "<!-- busy results: begin -->", "<!-- busy results: end -->"


def replace_block(doc, begin, end, text, into):
    if doc.count(begin) != 1 or doc.count(end) != 1:
        print(f"{into} needs one line {begin} and one line {end}", file=sys.stderr)
        return None
    head, rest = doc.split(begin)
    _, tail = rest.split(end)
    return head + begin + "\n\n" + text + "\n" + end + tail


def main(argv):
    into = None
    if len(argv) == 4 and argv[2] == "--into":
        into = argv[3]
    elif len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = argv[1]
    cycle = load(results, "cycle.json")
    profile = load(results, "profile.json")
    busy = busy_section(load(results, "busy.jsonl"), load(results, "machine.json"))
    busy += busy_section(load(results, "busy_python.jsonl"), None, "python",
                         "python+runs_busy_timeout",
                         "#### From Python: sqlite3.connect(timeout=5.0) against runs_busy_timeout(5000)"
                         " (`tests/bench/python_contention.py`)")
    if cycle is None and busy:  # run.sh --busy-only
        if into is None:
            print("\n".join(busy))
            return 0
        with open(into) as f:
            doc = replace_block(f.read(), BUSY_BEGIN, BUSY_END, "\n".join(busy), into)
        if doc is None:
            return 1
        with open(into, "w") as f:
            f.write(doc)
        return 0
    out = []
    out += machine_section(load(results, "machine.json"))
    out += cycle_section(cycle, profile)
    out += python_section(load(results, "python.json"))
    out += active_run_section(cycle)
    out += contention_section(load(results, "contention.jsonl"))
    out += memory_section(load(results, "memory_connections.json"), load(results, "memory_cycles.json"))
    out += profile_section(profile)
    text = "\n".join(out)
    if into is None:
        print(text + ("\n" + "\n".join(busy) if busy else ""))
        return 0
    with open(into) as f:
        doc = replace_block(f.read(), BEGIN, END, text, into)
    if doc is not None and busy:
        doc = replace_block(doc, BUSY_BEGIN, BUSY_END, "\n".join(busy), into)
    if doc is None:
        return 1
    with open(into, "w") as f:
        f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
