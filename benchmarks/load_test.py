"""Load test: 50 signed-in clients on loopback for 60 s, bounded in clients, requests and seconds.

Starts ``experimentos serve`` (waitress) on a fresh database with the sample experiments and one
analyst user, signs every client in through ``/login`` (its own cookie jar, CSRF token and
same-origin headers, as a browser), then each client loops until the deadline over what a team
does most: open a page, fill the History table, open an experiment's page, and — one iteration in
``--analyse-every`` — analyse the sample file (the background job, isolated worker included).
Every response must be 200 (or 204 for a callback with nothing to update); anything else, a
timeout or a connection error counts as an error. Prints requests, errors, throughput and the
median / p95 / max latency per kind.

    .venv/bin/python benchmarks/load_test.py [--clients 50] [--seconds 60] [--analyse-every 10] [--think 0]

``--think S``: each client pauses S seconds after every response, as a person reading the page
would; 0 (the default) is a stress test, every client asking again at once.
"""

from __future__ import annotations

import argparse
import base64
import http.cookiejar
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "loadtester", "a long load-test passphrase"
MAX_REQUESTS_PER_CLIENT = 5000  # a bound besides the clock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """One browser: a cookie jar, and the Origin header a browser sends with every POST."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, path: str, body: bytes | None = None, content_type: str = "application/json") -> tuple[int, bytes]:
        headers = {"Origin": self.base, "Referer": self.base + "/"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=body, headers=headers)
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def sign_in(self) -> None:
        status, page = self.request("/login")
        token = re.search(rb'name="csrf" value="([^"]+)"', page)
        if status != 200 or token is None:
            raise RuntimeError(f"no login form (HTTP {status})")
        form = urllib.parse.urlencode({"name": USER, "password": PASSWORD, "csrf": token.group(1).decode(),
                                       "next": "/"}).encode()
        status, _ = self.request("/login", form, "application/x-www-form-urlencoded")
        if status != 200:  # the redirect to / is followed
            raise RuntimeError(f"sign-in failed (HTTP {status})")


def callback(dependencies: list[dict[str, Any]], output: str, values: dict[str, Any],
             changed: str) -> dict[str, Any]:
    """The JSON the browser posts for the callback whose outputs include ``output``."""
    spec = next(d for d in dependencies if output in d["output"])
    return {
        "output": spec["output"],
        "outputs": [{"id": o.split(".")[0].lstrip("."), "property": o.split(".")[1].split("@")[0]}
                    for o in spec["output"].strip(".").split("...")],
        "inputs": [{"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")}
                   for i in spec["inputs"]],
        "state": [{"id": s["id"], "property": s["property"], "value": values.get(f"{s['id']}.{s['property']}")}
                  for s in spec["state"]],
        "changedPropIds": [changed],
    }


def run_client(base: str, payloads: dict[str, dict[str, Any]], deadline: float, analyse_every: int,
               timings: dict[str, list[float]], errors: list[str], lock: threading.Lock, think: float) -> None:
    client = Client(base)
    try:
        client.sign_in()
    except (OSError, RuntimeError) as error:
        with lock:
            errors.append(f"sign-in: {error}")
        return
    iteration = 0
    while time.monotonic() < deadline and iteration * 5 < MAX_REQUESTS_PER_CLIENT:
        iteration += 1
        work: list[tuple[str, str, dict[str, Any] | None]] = [
            ("page /history", "/history", None),
            ("callback history table", "/_dash-update-component", payloads["history"]),
            ("page /experiments/1", "/experiments/1", None),
            ("callback experiment page layout", "/_dash-update-component", payloads["experiment"]),
        ]
        if analyse_every and iteration % analyse_every == 0:
            work.append(("analyse sample (background job)", "/_dash-update-component", payloads["analyse"]))
        for kind, path, payload in work:
            started = time.perf_counter()
            try:
                status, body = client.request(path, None if payload is None else json.dumps(payload).encode())
                if kind.startswith("analyse") and status == 200:
                    status, body = _poll(client, payload or {}, body)
            except OSError as error:
                status, body = 0, str(error).encode()
            elapsed = time.perf_counter() - started
            with lock:
                timings[kind].append(elapsed)
                if status not in (200, 204):
                    errors.append(f"{kind}: HTTP {status} {body[:120]!r}")
            if think:
                time.sleep(think)


def _poll(client: Client, payload: dict[str, Any], first: bytes) -> tuple[int, bytes]:
    handles = json.loads(first)
    if "cacheKey" not in handles:
        return 200, first
    query = urllib.parse.urlencode({"cacheKey": handles["cacheKey"], "job": handles["job"]})
    limit = time.monotonic() + 60
    while time.monotonic() < limit:
        status, body = client.request(f"/_dash-update-component?{query}", json.dumps(payload).encode())
        if status != 200 or b'"response"' in body:
            return status, body
        time.sleep(0.1)  # the browser's interval
    return 0, b"the analysis job did not finish within 60 s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--analyse-every", type=int, default=10, help="analyse the sample every N iterations (0: never)")
    parser.add_argument("--think", type=float, default=0.0, help="seconds each client waits after a response")
    args = parser.parse_args()
    if not (1 <= args.clients <= 200 and 0 < args.seconds <= 300):
        parser.error("--clients 1..200 and --seconds up to 300 (a bounded test)")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as folder:
        database = str(Path(folder) / "load.duckdb")
        subprocess.run([sys.executable, "-m", "dashapp.cli", "users", "add", USER, "--role", "analyst", "--db", database],
                       input=PASSWORD + "\n", text=True, env=environment, check=True, capture_output=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "dashapp.cli", "serve", "--db", database, "--port", str(port)],
                                  cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
        try:
            for _ in range(150):
                try:
                    urllib.request.urlopen(base + "/login", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.2)
            probe = Client(base)
            probe.sign_in()
            _, body = probe.request("/_dash-dependencies")
            dependencies = json.loads(body)
            sample = ROOT / "data" / "sample_launch.csv"
            contents = "data:text/csv;base64," + base64.b64encode(sample.read_bytes()).decode()
            payloads = {
                "history": callback(dependencies, "history-table.rowData", {}, "history-search.value"),
                # Dash Pages' router: the experiment page's layout, read from the database
                "experiment": callback(dependencies, "_pages_content.children",
                                       {"_pages_location.pathname": "/experiments/1", "_pages_location.search": ""},
                                       "_pages_location.pathname"),
                "analyse": callback(dependencies, "upload-message.children",
                                    {"upload-checked.data": {"contents": contents, "filename": sample.name}},
                                    "upload-checked.data"),
            }
            timings: dict[str, list[float]] = defaultdict(list)
            errors: list[str] = []
            lock = threading.Lock()
            deadline = time.monotonic() + args.seconds
            started = time.perf_counter()
            threads = [threading.Thread(target=run_client, args=(base, payloads, deadline, args.analyse_every, timings,
                                                                 errors, lock, args.think), daemon=True)
                       for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=args.seconds + 120)
            wall = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=15)
    total = sum(len(v) for v in timings.values())
    print(f"{args.clients} signed-in clients for {args.seconds:g} s on loopback (think time {args.think:g} s): "
          f"{total} requests in {wall:.1f} s "
          f"({total / wall:.1f}/s), {len(errors)} errors")
    every = sorted(t for values in timings.values() for t in values)
    if every:
        print(f"  all requests            median {statistics.median(every) * 1000:7.0f} ms   "
              f"p95 {every[max(0, round(0.95 * len(every)) - 1)] * 1000:7.0f} ms   max {every[-1] * 1000:7.0f} ms")
    for kind, values in sorted(timings.items()):
        ordered = sorted(values)
        print(f"  {kind:<34} n={len(values):<5} median {statistics.median(values) * 1000:7.0f} ms   "
              f"p95 {ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000:7.0f} ms")
    for error in errors[:10]:
        print("  error:", error)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
