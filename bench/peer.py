#!/usr/bin/python3
"""The peer for bench/load.py: the Python reference agent's per-operation
hot path, as a plain loop over `requests`, against the same orchestrator
egressd is measured against.

usage: peer.py --url URL --token-id ID --token-file FILE --version V
           [--user-agent UA] [--db PATH] [--slot N]

One operation is what a worker of egressd does for /api/v1/test/health:
  GET {url}/api/v1/agent/operation            (204: the queue is empty, stop)
  build the health result: the same JSON object egressd's health handler
      returns (status, version, instance_id, pid, worker, generation,
      uptime, counters{inflight, done, failed}, db{size_bytes, wal_bytes}
      from two stat() calls, agent_pid)
  PUT {url}/api/v1/agent/operations/{id}/result  body {"result": RESULT},
      compact JSON as cJSON_PrintUnformatted writes it; a reply holding
      "next_operation" is run next without a GET (piggyback), as egressd
      does.
Every request carries egressd's headers: x-mcd-id, x-mcd-token,
x-mcd-agent-instance-id (a uuid4 of this process), User-Agent, Accept:
application/json, and Content-Type: application/json with a body; requests'
own defaults (Accept-Encoding: gzip, Connection) are removed, so that the
requests differ from libcurl's only in the order of the headers and in one
"Accept-Encoding: identity" that http.client adds by itself.  One keep-alive
connection (a requests.Session), one operation at a time.  Unlike egressd,
nothing is written to a database: no agent process, no outbox.

Protocol with the runner: after one warm-up GET (which opens the
connection; the queue is still empty) it prints "ready"; it starts on a
"go" line on stdin; when the queue is empty it prints one JSON line
{"ops", "cpu", "wall", "errors"} (cpu: user + system seconds of the loop
alone, from os.times()) and exits.
"""

import argparse
import json
import os
import sys
import time
import uuid

import requests

GET_TIMEOUT = 30.0              # DESIGN section 2: next operation
PUT_TIMEOUT = 60.0              # result


class Peer:
    def __init__(self, args):
        self.base = args.url.rstrip("/")
        with open(args.token_file) as f:
            token = f.read().strip()
        self.instance_id = str(uuid.uuid4())
        self.version = args.version
        self.slot = args.slot
        self.db = args.db
        self.started = time.monotonic()
        self.done = 0
        self.failed = 0
        self.agent_pid = 0
        s = requests.Session()
        s.headers.clear()
        s.headers.update({
            "x-mcd-id": args.token_id,
            "x-mcd-token": token,
            "x-mcd-agent-instance-id": self.instance_id,
            "User-Agent": args.user_agent or f"egressd/{args.version}",
            "Accept": "application/json",
        })
        self.session = s

    def file_size(self, path):
        try:
            return os.stat(path).st_size
        except OSError:
            return 0

    def health(self):
        """What op_health (src/ops/health.c) returns, field for field."""
        self.agent_pid += 1
        return {
            "status": "ok",
            "version": self.version,
            "instance_id": self.instance_id,
            "pid": os.getpid(),
            "worker": self.slot,
            "generation": 1,
            "uptime": time.monotonic() - self.started,
            "counters": {"inflight": 1, "done": self.done,
                         "failed": self.failed},
            "db": {"size_bytes": self.file_size(self.db),
                   "wal_bytes": self.file_size(self.db + "-wal")},
            "agent_pid": self.agent_pid,
        }

    def get_operation(self):
        r = self.session.get(self.base + "/api/v1/agent/operation",
                             timeout=GET_TIMEOUT)
        if r.status_code == 204:
            return None
        r.raise_for_status()
        return r.json()

    def run(self, op):
        """One operation: run it, PUT its result; the piggybacked next."""
        if op.get("path") == "/api/v1/test/health":
            result = self.health()
        else:
            result = {"error": f"unsupported operation path: "
                      f"{op.get('path')}"}
        body = json.dumps({"result": result}, separators=(",", ":"))
        r = self.session.put(
            f"{self.base}/api/v1/agent/operations/{op['operation_id']}"
            f"/result", data=body.encode(),
            headers={"Content-Type": "application/json"},
            timeout=PUT_TIMEOUT)
        if not 200 <= r.status_code < 300:
            self.failed += 1
            return None
        self.done += 1
        if not r.content:
            return None
        return r.json().get("next_operation")

    def loop(self):
        op = self.get_operation()
        while op is not None:
            op = self.run(op) or self.get_operation()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token-id", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--user-agent")
    ap.add_argument("--db", default="/nonexistent/egressd.db")
    ap.add_argument("--slot", type=int, default=0)
    args = ap.parse_args()
    peer = Peer(args)
    if peer.get_operation() is not None:
        print("peer: the queue was not empty before the start",
              file=sys.stderr)
        return 1
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    t0 = os.times()
    w0 = time.monotonic()
    peer.loop()
    wall = time.monotonic() - w0
    t1 = os.times()
    print(json.dumps({"ops": peer.done, "errors": peer.failed, "wall": wall,
                      "cpu": (t1.user - t0.user) + (t1.system - t0.system)}),
          flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
