#!/usr/bin/python3
"""Prints the machine and build that the benchmarks ran on, as JSON.
  /usr/bin/python3 tests/bench/machine.py BUILD"""
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys


def run(*command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def cache(build, name):
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "?"


def main(build):
    with open("/proc/meminfo") as f:
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    compiler = cache(build, "CMAKE_CXX_COMPILER")
    print(json.dumps({
        "date": run("date", "-u", "+%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": run("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "filesystem": run("df", "--output=fstype", ".").splitlines()[-1].strip(),
        "load_average": os.getloadavg(),
        "sqlite": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "compiler": run(compiler, "--version").splitlines()[0] if compiler != "?" else "?",
        "build_type": cache(build, "CMAKE_BUILD_TYPE"),
        "flags": cache(build, "CMAKE_CXX_FLAGS_" + cache(build, "CMAKE_BUILD_TYPE").upper()),
        "google_benchmark": run("dpkg-query", "-W", "-f=${Version}", "libbenchmark-dev"),
        "commit": run("git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"),
    }, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
