#!/usr/bin/env python3
"""Writes the seed corpus (tests/fuzz/corpus/) and the dictionary (tests/fuzz/runs.dict).

The corpus also holds inputs the fuzzer found, kept as they were (regression_*);
this script leaves them alone.

The byte format is the one runs_fuzz.cpp decodes (its header says it): keep the
tables below in the order of kFunctions, kStatements and the argument kinds there.
Run it from anywhere: python3 tests/fuzz/make_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# kFunctions in runs_fuzz.cpp: (name, min_args).
FUNCTIONS = [("start_run", 1), ("active_run", 0), ("mark_run_running", 1), ("complete_run", 1),
             ("fail_run", 2), ("cancel_run", 1), ("update_run_progress", 4), ("run_status", 1),
             ("runs_migrate", 0), ("runs_version", 0), ("heartbeat_run", 1),
             ("reap_stale_runs", 0), ("run_info", 1)]
STATEMENTS = ["BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", "SAVEPOINT fuzz", "RELEASE fuzz",
              "ROLLBACK TO fuzz", "PRAGMA query_only = 1", "PRAGMA query_only = 0"]
WORDS = ["", "k", "full", "api", "pending", "running", "completed", "failed", "cancelled"]
ALONE, FROM_TABLE, INSERT_SELECT, WHILE_READING = range(4)
MIGRATE = b"\x01"
NO_MIGRATE = b"\x00"


def null():
    return b"\x00"


def small(n):
    return bytes([1, n & 0xFF])


def int64(n):
    return b"\x02" + struct.pack(">q", n)


def edge_int(i):
    return bytes([3, i])


def real(x):
    return b"\x04" + struct.pack(">d", x)


def edge_real(i):
    return bytes([5, i])


def text(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes([6, len(b)]) + b


def blob(b):
    return bytes([7, len(b)]) + b


def long_text(length_index, char=ord("x")):
    return bytes([8, length_index, char])


def run_id(n=0):
    return bytes([9, n])


def run_id_real(n=0):
    return bytes([10, n])


def word(w):
    return bytes([11, WORDS.index(w)])


def long_blob(length_index):
    return bytes([12, length_index])


def call(name, *args, shape=ALONE, fail_allocation=None):
    """A call; fail_allocation=n makes SQLite's (n+1)-th allocation in it fail."""
    index = [f[0] for f in FUNCTIONS].index(name)
    head = bytes([index, shape]) if fail_allocation is None else bytes([index, shape | 0x80, fail_allocation])
    return head + bytes([len(args) - FUNCTIONS[index][1]]) + b"".join(args)


def statement(sql):
    return bytes([len(FUNCTIONS) + STATEMENTS.index(sql)])


SEEDS = {
    "lifecycle": MIGRATE + call("start_run", text("full")) + call("mark_run_running", run_id())
    + call("update_run_progress", run_id(), small(1), small(2), text("extract"))
    + call("complete_run", run_id()) + call("run_status", run_id()) + call("active_run"),
    "conflict": MIGRATE + call("start_run", text("a"), word("api"), word("k"))
    + call("start_run", text("b"), word("api"), word("k")) + call("active_run", word("k"))
    + call("cancel_run", run_id()) + call("start_run", text("c"), word("api"), word("k"))
    + call("fail_run", run_id(1), text("boom")),
    "keys": MIGRATE + b"".join(call("start_run", word("full"), word("api"), text(k))
                               for k in ["", "a", "b", "a", "\xe9"])
    + call("active_run", text("a")) + call("mark_run_running", run_id(1)),
    "bad_types": MIGRATE + call("start_run", small(1)) + call("start_run", blob(b"\x00"))
    + call("start_run", null()) + call("start_run", text("s"), real(1.5))
    + call("mark_run_running", text("1")) + call("complete_run", edge_real(4))
    + call("fail_run", edge_real(10), text("x")) + call("cancel_run", edge_real(13))
    + call("run_status", edge_int(5)) + call("update_run_progress", small(1), small(255), small(2), null())
    + call("update_run_progress", small(1), small(3), small(2), small(1)),
    "long_texts": MIGRATE + call("start_run", long_text(2)) + call("start_run", long_text(1))
    + call("fail_run", run_id(), long_text(5)) + call("start_run", text("s"), long_text(0), long_text(1))
    + call("fail_run", run_id(1), long_text(4)) + call("active_run", long_blob(3)),
    "non_utf8": MIGRATE + call("start_run", text(b"\xff\xfe"), text(b"\xc3\x28"), text(b"\xed\xa0\x80"))
    + call("update_run_progress", run_id(), small(0), small(0), text(b"a\x00b"))
    + call("fail_run", run_id(), text(b"\x80\x81")),
    "transactions": MIGRATE + statement("BEGIN") + call("start_run", text("x"))
    + call("runs_migrate") + statement("ROLLBACK") + call("start_run", text("x"))
    + statement("BEGIN IMMEDIATE") + call("mark_run_running", run_id()) + statement("COMMIT")
    + statement("SAVEPOINT fuzz") + call("complete_run", run_id()) + statement("ROLLBACK TO fuzz")
    + statement("RELEASE fuzz") + call("run_status", run_id()),
    "shapes": MIGRATE + call("start_run", text("x"), shape=FROM_TABLE)
    + call("start_run", text("x"), shape=INSERT_SELECT) + call("start_run", text("x"), shape=WHILE_READING)
    + call("runs_migrate", shape=FROM_TABLE) + call("start_run", text("x"))
    + call("mark_run_running", run_id(), shape=INSERT_SELECT)
    + call("update_run_progress", run_id(), small(1), small(1), null(), shape=FROM_TABLE)
    + call("cancel_run", run_id(), shape=WHILE_READING),
    "unmigrated": NO_MIGRATE + call("start_run", text("x")) + call("active_run") + call("run_status", small(1))
    + call("runs_version") + call("runs_migrate") + call("start_run", text("x")) + call("runs_migrate"),
    "query_only": MIGRATE + call("start_run", text("x")) + statement("PRAGMA query_only = 1")
    + call("start_run", text("y"), word("api"), word("k")) + call("cancel_run", run_id())
    + call("runs_migrate") + statement("PRAGMA query_only = 0") + call("cancel_run", run_id()),
    "ids": MIGRATE + call("start_run", text("x")) + call("run_status", run_id_real())
    + call("mark_run_running", run_id_real()) + call("run_status", edge_int(4))
    + call("run_status", edge_int(5)) + call("run_status", int64(-2**63)) + call("complete_run", run_id_real()),
    "crash_recovery": MIGRATE + call("start_run", text("x"), word("api"), word("k"), small(30))
    + call("start_run", text("x"), word("api"), word("k"))
    + call("heartbeat_run", run_id()) + call("reap_stale_runs") + call("reap_stale_runs", word("k"))
    + call("run_info", run_id()) + call("start_run", text("y"), word("api"), text("l"), edge_int(4)),
    "out_of_memory": NO_MIGRATE + call("runs_migrate", fail_allocation=40) + call("runs_migrate")
    + b"".join(call("start_run", text("x"), fail_allocation=n) for n in (0, 3, 10, 30))
    + call("start_run", text("x")) + call("mark_run_running", run_id(), fail_allocation=2)
    + statement("BEGIN") + call("complete_run", run_id(), fail_allocation=5) + statement("COMMIT")
    + call("fail_run", run_id(), long_text(4), fail_allocation=1),
    # PRAGMA query_only expires every statement: start_run() prepares them again inside its
    # transaction, where a failed allocation leaves the transaction open (docs/reliability.md).
    "expired_statements": MIGRATE + call("start_run", text("x")) + call("cancel_run", run_id())
    + b"".join(statement("PRAGMA query_only = 0") + call("start_run", text("y"), fail_allocation=n)
               for n in range(0, 40, 3)),
    # A failed allocation while SQLite rolls back the INSERT around a failed call rolls back
    # the caller's whole transaction, though the statement reports the function's error.
    "caller_rolled_back": MIGRATE + b"".join(
        statement("BEGIN IMMEDIATE") + call("start_run", null(), shape=INSERT_SELECT, fail_allocation=n)
        + statement("ROLLBACK") for n in range(0, 12)),
}

# Words that help inside text arguments, and a few whole calls.
DICTIONARY = [b"pending", b"running", b"completed", b"failed", b"cancelled", b"api", b"full",
              b"\xc3\xa9", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x00",
              call("start_run", text("x")), call("start_run", word("full"), word("api"), word("k")),
              call("mark_run_running", run_id()), call("complete_run", run_id()),
              call("cancel_run", run_id()), call("fail_run", run_id(), text("e")),
              statement("BEGIN"), statement("COMMIT"), statement("ROLLBACK")]


def escape(b):
    return "".join(chr(c) if 0x20 <= c < 0x7F and chr(c) not in '"\\' else "\\x%02X" % c for c in b)


def main():
    corpus = os.path.join(HERE, "corpus")
    os.makedirs(corpus, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)
    with open(os.path.join(HERE, "runs.dict"), "w") as f:
        f.write("# libFuzzer dictionary for runs_fuzz, written by make_corpus.py\n")
        for i, entry in enumerate(DICTIONARY):
            f.write('w%d="%s"\n' % (i, escape(entry)))


if __name__ == "__main__":
    main()
