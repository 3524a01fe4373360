"""Dashboard latency: the upload → results callback over HTTP, and first render of each page.

Starts `experimentos serve` on a fresh database in a subprocess, then
1. runs the upload callback (the same JSON the browser sends to /_dash-update-component;
   a background callback: one POST starts the job, polls fetch the result) with an
   aggregated sample file 50 times and prints the median and p95 time to the result;
2. opens each page in headless Chromium (Debian's /usr/bin/chromium + chromedriver) and
   prints the time until its main element is on screen.

    .venv/bin/python benchmarks/dash_latency.py [--runs 50]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from load_test import callback  # the same payload builder (this folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: dict[str, object]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read()


def background_result(base: str, payload: dict[str, object]) -> bytes:
    """Run the analysis callback as the browser does: the first POST starts the background job
    and answers with signed handles; the same POST with the handles polls until the result."""
    status, body = post(f"{base}/_dash-update-component", payload)
    assert status == 200, body[:300]
    handles = json.loads(body)
    query = urllib.parse.urlencode({"cacheKey": handles["cacheKey"], "job": handles["job"]})
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        status, body = post(f"{base}/_dash-update-component?{query}", payload)
        if status == 200 and b'"response"' in body:
            return body
        time.sleep(0.005)
    raise TimeoutError("the analysis job did not finish within 60 s")


def callback_payload(base: str, sample: Path) -> dict[str, object]:
    with urllib.request.urlopen(f"{base}/_dash-dependencies", timeout=30) as response:
        dependencies = json.loads(response.read())
    spec = next(d for d in dependencies if any(i["id"] == "upload-checked" for i in d["inputs"]))
    contents = "data:text/csv;base64," + base64.b64encode(sample.read_bytes()).decode()
    values = {"upload-checked": {"contents": contents, "filename": sample.name}}
    return {
        "output": spec["output"],
        "outputs": [{"id": o.split(".")[0].lstrip("."), "property": o.split(".")[1].split("@")[0]}
                    for o in spec["output"].strip(".").split("...")],
        "inputs": [{"id": i["id"], "property": i["property"], "value": values.get(i["id"])} for i in spec["inputs"]],
        "state": [{"id": s["id"], "property": s["property"], "value": None} for s in spec["state"]],
        "changedPropIds": ["upload-checked.data"],
    }


def save_latencies(base: str, analysed: bytes, runs: int) -> dict[str, list[float]]:
    """Save to history, then Save notes, ``runs`` times each over HTTP, as the buttons post them:
    the server recomputes the report from the staged input (in a worker) and stores it."""
    with urllib.request.urlopen(f"{base}/_dash-dependencies", timeout=30) as response:
        dependencies = json.loads(response.read())
    state = json.loads(analysed)["response"]["session-store"]["data"]
    timings: dict[str, list[float]] = {"Save to history": [], "Save notes (new memo version)": []}
    for index in range(runs):
        payload = callback(dependencies, "save-message.children",
                            {"save-experiment.n_clicks": 1, "session-store.data": state}, "save-experiment.n_clicks")
        started = time.perf_counter()
        status, body = post(f"{base}/_dash-update-component", payload)
        timings["Save to history"].append(time.perf_counter() - started)
        assert status == 200 and b"Saved as" in body, body[-300:]
        saved = json.loads(body)["response"]["session-store"]["data"]
        payload = callback(dependencies, "notes-message.children",
                            {"save-notes.n_clicks": 1, "memo-notes.value": f"Reviewed, run {index}.",
                             "session-store.data": saved}, "save-notes.n_clicks")
        started = time.perf_counter()
        status, body = post(f"{base}/_dash-update-component", payload)
        timings["Save notes (new memo version)"].append(time.perf_counter() - started)
        assert status == 200, body[:300]
        time.sleep(0.5)  # a user's pause between clicks: the pool's next warm worker starts meanwhile
    return timings


def page_renders(base: str) -> dict[str, float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1366,768"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options)
    pages = {"/": "#latest-experiments", "/new": "#plan-result", "/results": ".data-guard", "/memo": ".data-guard",
             "/history": "#history-table .ag-row", "/experiments/1": "#decision-badge"}
    timings: dict[str, float] = {}
    try:
        driver.get(base + "/")  # warm the browser cache of the JS bundles once, as a returning user has it
        WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#latest-experiments")))
        for path, selector in pages.items():
            samples = []
            for _ in range(3):
                started = time.perf_counter()
                driver.get(base + path)
                WebDriverWait(driver, 30).until(
                    expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector)))
                samples.append(time.perf_counter() - started)
            timings[path] = statistics.median(samples)
        # What a user waits for: click "Load sample" until the health badge is on screen (the
        # background job, its polls and the render).
        samples = []
        for _ in range(5):
            driver.get(base + "/new")
            button = WebDriverWait(driver, 30).until(expected_conditions.element_to_be_clickable((By.ID, "load-sample")))
            driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", button)
            time.sleep(0.3)  # let the page settle before the clock starts
            started = time.perf_counter()
            button.click()
            WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.ID, "health-status")))
            samples.append(time.perf_counter() - started)
        timings["Load sample → health badge"] = statistics.median(samples)
    finally:
        driver.quit()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--save-runs", type=int, default=20)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen([sys.executable, "-m", "dashapp.cli", "serve", "--db", str(Path(folder) / "b.duckdb"),
                                   "--port", str(port)], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.2)
            payload = callback_payload(base, ROOT / "data" / "sample_launch.csv")
            assert b"launch" in background_result(base, payload)  # warm-up
            timings = []
            for _ in range(args.runs):
                started = time.perf_counter()
                background_result(base, payload)
                timings.append(time.perf_counter() - started)
            ordered = sorted(timings)
            p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
            print(f"upload → results background callback (aggregated sample_launch.csv, {args.runs} runs: the POST "
                  "that starts the job, then polls every 5 ms until the result is back):")
            print(f"  median {statistics.median(timings) * 1000:.1f} ms   p95 {p95 * 1000:.1f} ms   "
                  f"max {ordered[-1] * 1000:.1f} ms   (the browser polls every 100 ms)")
            print(f"save latency over HTTP ({args.save_runs} runs each; the button's POST until the answer):")
            for name, values in save_latencies(base, background_result(base, payload), args.save_runs).items():
                ordered = sorted(values)
                p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
                print(f"  {name:32s} median {statistics.median(values) * 1000:6.0f} ms   p95 {p95 * 1000:6.0f} ms   "
                      f"(target p95 ≤ 300 ms: {'met' if p95 <= 0.3 else 'NOT MET'})")
            print("in headless Chromium (JS bundles cached): first render of each page (median of 3), and a click")
            for path, seconds in page_renders(base).items():
                print(f"  {path:28s} {seconds * 1000:7.0f} ms")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
