#!/usr/bin/env python3
"""Writes the seed corpus (tests/fuzz/corpus/) and the dictionary (tests/fuzz/runs.dict).

The byte format is the one runs_fuzz.cpp decodes (its header says it). A call
names its function by its position in the extension's function table
(runs::function_specs()), a statement and a word (argument kind 11) by their
positions in kStatements and kWords of runs_fuzz.cpp: this script asks the
built fuzzer for all three, so a new function changes the bytes of every later
one: write the corpus again (fuzz.corpus_is_current fails until then). The
argument kinds below follow read_arg() in runs_fuzz.cpp.

    /usr/bin/python3 tests/fuzz/make_corpus.py build/test-sanitize/tests/fuzz/runs_fuzz
    /usr/bin/python3 tests/fuzz/make_corpus.py --check build/test-sanitize/tests/fuzz/runs_fuzz
"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def read_tables(fuzzer):
    """Fills FUNCTIONS [(name, min_args, max_args)], STATEMENTS and WORDS from
    the fuzzer's tables, in their order."""
    out = subprocess.run([fuzzer], env=dict(os.environ, RUNS_FUZZ_LIST_TABLES="1"),
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "function":
            name, low, high = rest.split()
            FUNCTIONS.append((name, int(low), int(high)))
        elif kind == "statement":
            STATEMENTS.append(rest)
        elif kind == "word":
            WORDS.append(bytes.fromhex(rest).decode("utf-8", "surrogateescape"))
    if not (FUNCTIONS and STATEMENTS and WORDS):
        sys.exit(f"{fuzzer} did not list its functions, statements and words")


FUNCTIONS, STATEMENTS, WORDS = [], [], []  # read_tables(), before anything is encoded
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


def raw_call(name, shape, fail_allocation, argc, encoded_args):
    """A call of `argc` arguments (one more than the function takes, for the
    arity check), given as their encoded bytes; shape is the whole shape byte,
    fail_allocation the byte after it (or None)."""
    index = [f[0] for f in FUNCTIONS].index(name)
    low = FUNCTIONS[index][1]
    head = bytes([index, shape]) + (b"" if fail_allocation is None else bytes([fail_allocation]))
    return head + bytes([argc - low]) + encoded_args


def call(name, *args, shape=ALONE, fail_allocation=None):
    """A call; fail_allocation=n makes SQLite's (n+1)-th allocation in it fail."""
    if fail_allocation is not None:
        shape |= 0x80
    return raw_call(name, shape, fail_allocation, len(args), b"".join(args))


def statement(sql):
    return bytes([len(FUNCTIONS) + STATEMENTS.index(sql)])


def seeds():
    """Every seed input by name."""
    return {
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
        # The functions of runs_check(), runs_owner_pid() (pid 1 lives: runs it owns are not
        # abandoned, so cancel_run() asks and heartbeat_run() sees the request) and
        # runs_busy_timeout(), and the answers of try_start_run().
        "owners_and_answers": MIGRATE + call("runs_check") + call("runs_owner_pid", small(1))
        + call("try_start_run", text("a"), word("api"), word("k")) + call("mark_run_running", run_id())
        + call("try_start_run", text("b"), word("api"), word("k")) + call("cancel_run", run_id())
        + call("heartbeat_run", run_id()) + call("runs_busy_timeout", small(5))
        + call("runs_busy_timeout", edge_int(1)) + call("runs_debug") + call("runs_owner_pid", small(0))
        + call("runs_check", shape=INSERT_SELECT) + call("reap_stale_runs", null(), small(0)),
        "unmigrated_check": NO_MIGRATE + call("runs_check") + call("try_start_run", text("x"))
        + call("runs_migrate") + call("runs_check"),
        # Inputs the fuzzer found (the first, after 5 minutes: start_run() left its transaction
        # open after a failed allocation; the second, after 28 minutes: SQLite rolls back the
        # caller's transaction after a failed allocation in sqlite3VdbeHalt()), as they decoded
        # then.
        "regression_expired_statement": MIGRATE + raw_call('start_run', 0, None, 1, b'\x08\x12x')
        + raw_call('start_run', 24, None, 1, b'\x00') + raw_call('start_run', 0, None, 1, b'\x08\x01x')
        + raw_call('start_run', 0, None, 1, b'\x08\x12x') + raw_call('start_run', 24, None, 1, b'\x00')
        + raw_call('start_run', 0, None, 1, b'\x08\x01x') + raw_call('runs_migrate', 195, 40, 0, b'')
        + raw_call('runs_migrate', 5, None, 0, b'') + raw_call('start_run', 0, None, 4, b'\x00\x00\x00\x80\x10')
        + statement('PRAGMA query_only = 0')
        + raw_call('update_run_progress', 1, None, 4, b'x\x06\x03\x00\x80\x01x\x00') + statement('RELEASE fuzz')
        + raw_call('heartbeat_run', 0, None, 1, b'\x01x') + raw_call('start_run', 128, 30, 1, b'\x06\x01x')
        + raw_call('start_run', 3, None, 1, b''),
        "regression_rollback_in_halt": MIGRATE + raw_call('start_run', 1, None, 2, b'\xff\xff\xff\xff\x01\x00')
        + statement('BEGIN IMMEDIATE') + raw_call('active_run', 10, None, 0, b'')
        + raw_call('update_run_progress', 120, None, 5, b'%qli\xff\xff\xff\xff\x05\x00\x00\t\x02\x00\x00')
        + raw_call('start_run', 0, None, 1, b'\x00') + raw_call('start_run', 134, 134, 5, b'\x86' * 13 + b'\x10' + b'\x86' * 31)
        + raw_call('mark_run_running', 134, 134, 1, b'\x86' * 9) + raw_call('mark_run_running', 134, 134, 1, b'\x86' * 9)
        + raw_call('mark_run_running', 134, 1, 2, b'\x01\x00\x05\x03') + raw_call('start_run', 134, 5, 1, b'\x00')
        + raw_call('runs_version', 0, None, 0, b'') + raw_call('mark_run_running', 134, 134, 1, b'\x10\x86')
        + raw_call('mark_run_running', 134, 134, 1, b'\x86' * 9) + raw_call('mark_run_running', 9, None, 1, b'\x86\x10' + b'\x86' * 7)
        + raw_call('mark_run_running', 134, 134, 1, b'\x86' * 9) + raw_call('mark_run_running', 134, 134, 1, b'\x86' * 9)
        + statement('ROLLBACK TO fuzz') + raw_call('mark_run_running', 134, 134, 1, b'\x86' * 9)
        + raw_call('mark_run_running', 134, 0, 1, b'\x86' * 9) + raw_call('mark_run_running', 134, 5, 1, b'\x00')
        + raw_call('runs_version', 0, None, 0, b'') + statement('SAVEPOINT fuzz')
        + raw_call('mark_run_running', 134, 134, 1, b''),
    }

def dictionary():
    """Words that help inside text arguments, and a few whole calls."""
    return [b"pending", b"running", b"completed", b"failed", b"cancelled", b"api", b"full",
            b"\xc3\xa9", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x00",
            call("start_run", text("x")), call("start_run", word("full"), word("api"), word("k")),
            call("try_start_run", word("full"), word("api"), word("k")),
            call("mark_run_running", run_id()), call("complete_run", run_id()),
            call("cancel_run", run_id()), call("fail_run", run_id(), text("e")),
            call("heartbeat_run", run_id()), call("runs_owner_pid", small(1)),
            statement("BEGIN"), statement("COMMIT"), statement("ROLLBACK")]


def escape(b):
    return "".join(chr(c) if 0x20 <= c < 0x7F and chr(c) not in '"\\' else "\\x%02X" % c for c in b)


def outputs():
    """{path: bytes} of every file this script writes."""
    files = {os.path.join(HERE, "corpus", name): data for name, data in seeds().items()}
    lines = ["# libFuzzer dictionary for runs_fuzz, written by make_corpus.py\n"]
    lines += ['w%d="%s"\n' % (i, escape(entry)) for i, entry in enumerate(dictionary())]
    files[os.path.join(HERE, "runs.dict")] = "".join(lines).encode()
    return files


def main():
    args = sys.argv[1:]
    check = args[:1] == ["--check"]
    if check:
        args = args[1:]
    if len(args) != 1:
        sys.exit("usage: make_corpus.py [--check] PATH_OF_THE_BUILT_runs_fuzz")
    read_tables(args[0])
    files = outputs()
    corpus = os.path.join(HERE, "corpus")
    stale = sorted(os.path.join(corpus, name) for name in os.listdir(corpus)
                   if os.path.join(corpus, name) not in files)
    if check:
        differ = [path for path, data in files.items()
                  if not os.path.exists(path) or open(path, "rb").read() != data]
        for path in differ + stale:
            print(f"{os.path.relpath(path, HERE)} is not what make_corpus.py writes from {args[0]}'s functions")
        if differ or stale:
            print(f"write them again: /usr/bin/python3 {os.path.relpath(__file__)} {args[0]}")
            sys.exit(1)
        print(f"{len(files)} files match the tables of {args[0]} ({len(FUNCTIONS)} functions)")
        return
    for path in stale:
        os.remove(path)
    for path, data in files.items():
        with open(path, "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
