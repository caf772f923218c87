"""One process of the PostgreSQL race (pg_race_test.py): its own connection,
opened after exec, racing other processes to start runs of one key.

    pg_race_worker.py --dsn DSN --mode naive|start|victim --iterations N
                      [--key KEY] [--name NAME] [--lockstep]

Modes (each iteration counts one attempt):
  naive   the check-then-insert pattern in separate autocommit statements:
          SELECT an active run; if none, INSERT a pending run; then UPDATE it
          to running and to completed. `refusals` counts checks that saw an
          active run, `wins` inserts that succeeded, `unique_errors` inserts
          refused with unique_violation (the index or the insert guard).
  start   SELECT start_run('race', NAME, KEY); on success mark_run_running()
          and complete_run(). `refusals` counts 'already active' refusals.
  victim  calls start_run() until it wins, marks the run running, writes
          "h <run id>\\n" and then blocks on stdin: the test kills it there
          with SIGKILL, while it owns an active run.

Synchronisation, no sleeps: once connected, the worker writes '.' ("ready")
and reads stdin, until EOF (free running), or until one byte (--lockstep, and
victims). With --lockstep it also stops at every step of every iteration
(naive: check | insert | finish; start: start_run | finish): it writes '.' and
waits for one byte. The parent releases a step once every worker reached it,
which forces "every worker checks, then every worker inserts".

At the end it prints one line of counts; unexpected failures go to stderr,
count as `errors`, and make the exit status 1.
"""

import argparse
import os
import sys

import psycopg2


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--dsn", required=True)
    p.add_argument("--mode", required=True, choices=["naive", "start", "victim"])
    p.add_argument("--iterations", type=int, required=True)
    p.add_argument("--key", default="")
    p.add_argument("--name", default="race_worker")
    p.add_argument("--lockstep", action="store_true")
    return p.parse_args()


def write(data):
    os.write(1, data)


def read_byte():
    return os.read(0, 1)


class Worker:
    def __init__(self, options):
        self.o = options
        self.counts = dict(attempts=0, wins=0, refusals=0, unique_errors=0, errors=0)
        self.conn = psycopg2.connect(options.dsn)
        self.conn.autocommit = True
        self.cur = self.conn.cursor()

    def rendezvous(self):
        if self.o.lockstep:
            write(b".")
            if not read_byte():
                sys.stderr.write("pg_race_worker: stdin closed during --lockstep\n")
                sys.exit(2)

    def unexpected(self, what, error):
        self.counts["errors"] += 1
        sys.stderr.write(f"pg_race_worker {self.o.name}: {what}: {error.pgcode} {error}\n")

    def one(self, sql, params=()):
        self.cur.execute(sql, params)
        row = self.cur.fetchone()
        return row[0] if row else None

    def expect(self, sql, params, wanted, what):
        try:
            got = self.one(sql, params)
        except psycopg2.Error as e:
            self.unexpected(what, e)
            return
        if got != wanted:
            self.counts["errors"] += 1
            sys.stderr.write(f"pg_race_worker {self.o.name}: {what} returned {got!r}\n")

    def naive(self):
        try:
            active = self.one("SELECT id FROM runs WHERE status IN ('pending', 'running')")
        except psycopg2.Error as e:
            self.unexpected("check", e)
            active = None
        self.rendezvous()
        run_id = None
        if active is not None:
            self.counts["refusals"] += 1
        else:
            try:
                run_id = self.one("INSERT INTO runs (scope, status, triggered_by, created_at)"
                                  " VALUES ('race', 'pending', %s, clock_timestamp()) RETURNING id",
                                  (self.o.name,))
                self.counts["wins"] += 1
            except psycopg2.errors.UniqueViolation:
                self.counts["unique_errors"] += 1
            except psycopg2.Error as e:
                self.unexpected("insert", e)
        self.rendezvous()
        if run_id is not None:
            for status, column, before in [("running", "started_at", "pending"),
                                           ("completed", "finished_at", "running")]:
                self.expect(f"UPDATE runs SET status = '{status}', {column} = clock_timestamp()"
                            f" WHERE id = %s AND status = '{before}' RETURNING id",
                            (run_id,), run_id, f"update to {status}")
        self.rendezvous()

    def start(self):
        """The run id, or None when refused."""
        try:
            return self.one("SELECT start_run('race', %s, %s)", (self.o.name, self.o.key))
        except psycopg2.errors.UniqueViolation as e:
            if not e.diag.message_primary.startswith("start_run(): run ") or " is already active" not in str(e):
                self.unexpected("start_run refusal message", e)
            else:
                self.counts["refusals"] += 1
        except psycopg2.Error as e:
            self.unexpected("start_run", e)
        return None

    def start_iteration(self):
        run_id = self.start()
        if run_id is not None:
            self.counts["wins"] += 1
        self.rendezvous()
        if run_id is not None:
            self.expect("SELECT mark_run_running(%s)", (run_id,), "updated", "mark_run_running")
            self.expect("SELECT complete_run(%s)", (run_id,), "updated", "complete_run")
        self.rendezvous()

    def victim(self):
        for _ in range(self.o.iterations):
            self.counts["attempts"] += 1
            run_id = self.start()
            if run_id is not None:
                self.counts["wins"] += 1
                self.expect("SELECT mark_run_running(%s)", (run_id,), "updated", "mark_run_running")
                write(f"h {run_id}\n".encode())
                while read_byte():  # killed here
                    pass
                return
        sys.stderr.write(f"pg_race_worker {self.o.name}: never won in {self.o.iterations} attempts\n")
        self.counts["errors"] += 1

    def run(self):
        if self.o.mode == "victim":
            return self.victim()
        for _ in range(self.o.iterations):
            self.counts["attempts"] += 1
            if self.o.mode == "naive":
                self.naive()
            else:
                self.start_iteration()


def main():
    options = parse()
    worker = Worker(options)
    write(b".")  # ready
    if options.lockstep or options.mode == "victim":
        if not read_byte():
            sys.stderr.write("pg_race_worker: stdin closed before the start\n")
            return 2
    else:
        while read_byte():
            pass
    worker.run()
    worker.conn.close()
    print(" ".join(f"{k}={v}" for k, v in worker.counts.items()), flush=True)
    return 0 if worker.counts["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
