#!/usr/bin/env python3
"""Load and soak runs against the local server, printed as tables (not timed tests).

    scripts/load.py [--seconds 15] [--check]        the table (`make load`)
    scripts/load.py soak --seconds 600 [--check]    the soak (`make soak`; `make soak-short`: 60 s)

Both start the server binary themselves (--binary, else $TAGBEEZ_BIN, else target/local/tagbeez)
on a free loopback port with the in-memory store, wait for GET /health, warm it up, drive it
with wrk and scripts/load.lua, and always stop it at the end (also on Ctrl-C, SIGTERM or an
error). Python standard library only; wrk comes from scripts/install-load-tools.sh.

The table: POST /classify-message at 1, 8, 64 and 256 connections (--connections), each for
--seconds, wrk --timeout 2s, threads min(connections, 2); the series runs twice, "limit on"
(the server's own defaults) and "limit off" (INFERENCE_CONCURRENCY=0), rows side by side.
Between steps the script waits (at most 30 s) until the server's CPU is idle, so that work a
step left behind (inferences whose clients gave up) does not slow the next one.

What the columns mean:
  req/s            every response per second (wrk), 503 rejections included
  200/s            answered requests per second
  p50 p99 max      wrk's latency of every response, 503s included (a 503 is refused on
                   arrival, so at high load these mostly measure rejections), and only of those
                   within --timeout: slower ones are counted as timeouts instead
  200 p50/p99      latency of the 200s alone, from the server's request log lines (latency_ms,
                   every 200 of the step, not a sample). Measured by the server from request to
                   response, so without the loopback transit and the time a request waits to be
                   read, which wrk's numbers include. wrk cannot split latency by status: its
                   response() callback gets no latency, and Debian's wrk 4.1 passes no
                   per-request data to it, so with many connections per thread a response
                   cannot be matched to its request.
  200s 503s        answered; refused as overloaded (503 with "code":"overloaded")
  4xx 5xx          other 4xx; other 5xx (a 503 with another code counts here)
  timeouts         wrk's count: a response slower than 2 s, and again every 2 s for each
                   connection still waiting past it, so read it as "requests took over 2 s"
  sock err         connect + read + write errors
wrk is a closed loop without back-off: a refused connection sends its next request at once
(it ignores Retry-After), so past the limit most requests are 503s and req/s is mostly the
price of refusing; 200/s is the service's throughput. --retry-after makes the clients wait
the 503's Retry-After before their next request, as a polite client would (see load.lua).

Goals, printed after every run; with --check a miss exits 1. Table: the "limit on" series, at
256 connections no timeouts, no socket errors and no 5xx other than overload 503s, some 200s,
and the p99 of 200s (server log) within 3x of the p99 of 200s at 8 connections.

Soak: the server with its defaults under --connections (default 8) for --seconds; the server's
RSS (/proc/<pid>/status) every 10 s (every 5 s for runs under 120 s); the least-squares slope
in MiB per hour over the samples after the first 10% of the run (the first sample always
excluded: allocator arenas, thread stacks and caches fill in the first seconds); the status
counts. --check fails on any 5xx other than overload 503s, any socket error or timeout, no 200
at all, or a slope above --max-slope (default: see soak_bound()).

Exit status: 0 ran (and, with --check, met the goals); 1 a goal missed; 2 could not run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "scripts" / "load.lua"
DEFAULT_BINARY = ROOT / "target" / "local" / "tagbeez"
WRK_TIMEOUT = "2s"
STEPS = (1, 8, 64, 256)
START_TIMEOUT_S = 90.0  # model load on a busy machine; the wait stops early if the server exits
SETTLE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
# Settings the script must control: which store and mode the server runs, where it listens,
# the limit under test, and the log level its request lines need.
CONTROLLED_ENV = (
    "AWS_LAMBDA_RUNTIME_API", "TABLE_NAME", "DYNAMODB_ENDPOINT", "HOST", "PORT", "LOG_LEVEL",
    "INFERENCE_CONCURRENCY", "INFERENCE_QUEUE", "INFERENCE_QUEUE_TIMEOUT_MS",
)
WARMUP_MESSAGES = ("is this on sale?", "add the blue one to my cart", "just browsing thanks")


class CannotRun(Exception):
    """The run could not be made (exit 2): server, wrk or environment."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the machine ---------------------------------------------------------------------------

def cpu_summary() -> str:
    model, flags, count = "unknown", set(), 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "processor":
                count += 1
            elif key == "model name" and model == "unknown":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"CPU: {model}; {count} logical CPUs ({usable} usable); "
            f"avx512f: {'yes' if 'avx512f' in flags else 'no'}; avx2: "
            f"{'yes' if 'avx2' in flags else 'no'}; load average {load}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server ----------------------------------------------------------------------------

class Server:
    """One server process on a free loopback port, its stderr in a log file."""

    def __init__(self, binary: Path, env: dict[str, str], workdir: Path, name: str):
        self.binary, self.extra_env, self.name = binary, env, name
        self.log_path = workdir / f"server-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.ticks = os.sysconf("SC_CLK_TCK")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        for attempt in range(3):  # another process may take the free port before the server does
            self.port = free_port()
            env = {k: v for k, v in os.environ.items() if k not in CONTROLLED_ENV}
            env.update(HOST="127.0.0.1", PORT=str(self.port), LOG_LEVEL="info")
            env.update(self.extra_env)
            # O_APPEND: the server's writes follow the file's end, so the script may truncate
            # the file between steps (the 503 lines of a busy step are tens of MB).
            with open(self.log_path, "ab") as log_file:
                self.proc = subprocess.Popen(
                    [str(self.binary), "serve"], env=env, stdin=subprocess.DEVNULL,
                    stdout=log_file, stderr=log_file, start_new_session=True)
            if self._wait_ready():
                return
            text = self.log_tail()
            self.stop()
            if "cannot listen" in text and attempt < 2:
                continue
            raise CannotRun(f"server ({self.name}) did not become ready on {self.url}:\n{text}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _, _ = http_request(self.port, "GET", "/health", None, timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: the server does not trap it, it ends at once
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        self.proc = None

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks  # utime, stime

    def status(self) -> dict[str, int]:
        """VmRSS and VmHWM in KiB, and Threads, from /proc/<pid>/status."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
        return out

    def settle(self) -> float:
        """Wait until the server uses under 10% of a core; return the seconds waited."""
        started = time.monotonic()
        previous = self.cpu_seconds()
        while time.monotonic() - started < SETTLE_TIMEOUT_S:
            time.sleep(0.5)
            now = self.cpu_seconds()
            if now - previous < 0.05:
                return time.monotonic() - started
            previous = now
        log(f"  note: server still busy after {SETTLE_TIMEOUT_S:.0f} s")
        return time.monotonic() - started

    def take_log(self) -> list[str]:
        """The log lines written since the last call; the file is emptied."""
        with open(self.log_path, "rb") as f:
            data = f.read()
        os.truncate(self.log_path, 0)
        return data.decode("utf-8", "replace").splitlines()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:]) or "(empty log)"


def http_request(port: int, method: str, path: str, body: dict | None, timeout: float):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def request_log_stats(lines: list[str]) -> dict:
    """Counts by status, latencies of 200s, and warnings/errors, from the server's log lines."""
    by_status: dict[int, int] = {}
    ok_latency: list[float] = []
    problems: list[str] = []
    for line in lines:
        if '"level":"WARN"' in line or '"level":"ERROR"' in line:
            problems.append(line)
        if '"/classify-message"' not in line:
            continue
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if fields.get("message") != "request":
            continue
        status = int(fields.get("status", 0))
        by_status[status] = by_status.get(status, 0) + 1
        if status == 200 and "latency_ms" in fields:
            ok_latency.append(float(fields["latency_ms"]))
    ok_latency.sort()
    return {
        "by_status": by_status,
        "ok_count": len(ok_latency),
        "ok_p50_ms": percentile(ok_latency, 50),
        "ok_p99_ms": percentile(ok_latency, 99),
        "ok_max_ms": ok_latency[-1] if ok_latency else None,
        "ok_latency": ok_latency,
        "problems": problems,
    }


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[int(rank) - 1]


# --- wrk -----------------------------------------------------------------------------------

class Wrk:
    """wrk with scripts/load.lua; the running process is tracked so that it is always ended."""

    current: subprocess.Popen | None = None

    @staticmethod
    def command(url: str, connections: int, seconds: int) -> list[str]:
        return ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s",
                "--timeout", WRK_TIMEOUT, "-s", str(LUA), url]

    retry_after = False  # LOAD_RETRY_AFTER for load.lua: wait Retry-After after a 503

    @classmethod
    def start(cls, url: str, connections: int, seconds: int) -> subprocess.Popen:
        env = dict(os.environ, LOAD_RETRY_AFTER="1" if cls.retry_after else "0")
        cls.current = subprocess.Popen(
            cls.command(url, connections, seconds), stdin=subprocess.DEVNULL, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return cls.current

    @classmethod
    def finish(cls, proc: subprocess.Popen, seconds: int) -> dict:
        try:
            out, err = proc.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            cls.stop()
            raise CannotRun(f"wrk did not finish within {seconds + 30} s")
        finally:
            cls.current = None
        for line in reversed(out.splitlines()):
            if line.startswith('{"tool":"load.lua"'):
                return json.loads(line)
        raise CannotRun(f"wrk printed no result (exit {proc.returncode}):\n{out}\n{err}")

    @classmethod
    def run(cls, url: str, connections: int, seconds: int) -> dict:
        return cls.finish(cls.start(url, connections, seconds), seconds)

    @classmethod
    def stop(cls) -> None:
        proc, cls.current = cls.current, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


def require_tools(binary: Path) -> None:
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise CannotRun(f"no server binary at {binary}: build it with "
                        "`cargo build --profile local`, or pass --binary / set TAGBEEZ_BIN")
    try:
        subprocess.run(["wrk", "--version"], capture_output=True, timeout=10)
    except FileNotFoundError:
        raise CannotRun("wrk is not installed: run scripts/install-load-tools.sh") from None


def warm_up(server: Server, seconds: int) -> None:
    """A few requests one at a time (each must be a 200 with tags), then wrk for a while."""
    for text in WARMUP_MESSAGES * 3:
        status, _, body = http_request(server.port, "POST", "/classify-message",
                                       {"message": text}, timeout=30)
        if status != 200 or "selected" not in json.loads(body or b"{}"):
            raise CannotRun(f"POST /classify-message answered {status}: {body[:300]!r}")
    if seconds > 0:
        Wrk.run(server.url, 8, seconds)
    server.settle()
    server.take_log()


# --- the table -----------------------------------------------------------------------------

def run_series(server: Server, steps: list[int], seconds: int) -> list[dict]:
    rows = []
    for connections in steps:
        log(f"  {server.name}: {connections} connection(s), {seconds} s")
        server.settle()
        server.take_log()
        result = Wrk.run(server.url, connections, seconds)
        settled = server.settle()
        if not server.alive():
            raise CannotRun(f"server ({server.name}) exited during the run:\n{server.log_tail()}")
        result["connections"] = connections
        result["series"] = server.name
        result["server_log"] = request_log_stats(server.take_log())
        del result["server_log"]["ok_latency"]
        result["settle_s"] = round(settled, 1)
        rows.append(result)
    return rows


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def print_table(rows: list[dict], steps: list[int], series: list[str]) -> None:
    head = ["connections", "limit", "req/s", "200/s", "p50 ms", "p99 ms", "max ms",
            "200 p50 ms", "200 p99 ms", "200s", "503s", "other 4xx", "5xx", "timeouts",
            "sock err"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" for _ in head) + "|")
    for connections in steps:
        for name in series:
            r = next((r for r in rows if r["connections"] == connections
                      and r["series"] == name), None)
            if r is None:
                continue
            lat, st, err, srv = r["latency_ms"], r["status"], r["errors"], r["server_log"]
            cells = [
                str(connections), name.replace("limit ", ""), f"{r['requests_per_s']:.0f}",
                f"{st['200'] / r['duration_s']:.1f}" if r["duration_s"] else "-",
                fmt_ms(lat["p50"]), fmt_ms(lat["p99"]), fmt_ms(lat["max"]),
                fmt_ms(srv["ok_p50_ms"]), fmt_ms(srv["ok_p99_ms"]),
                str(st["200"]), str(st["503"]), str(st["4xx"]), str(st["5xx"]),
                str(err["timeout"]), str(err["connect"] + err["read"] + err["write"]),
            ]
            print("| " + " | ".join(cells) + " |")


def table_goals(rows: list[dict]) -> list[str]:
    """The missed goals of the "limit on" series (empty: all met)."""
    on = {r["connections"]: r for r in rows if r["series"] == "limit on"}
    if 8 not in on or 256 not in on:
        return ["--check needs the 8- and 256-connection steps (see --connections)"]
    missed = []
    top, base = on[256], on[8]
    err = top["errors"]
    if err["timeout"]:
        missed.append(f"256 connections: {err['timeout']} timeouts (requests over {WRK_TIMEOUT})")
    sockets = err["connect"] + err["read"] + err["write"]
    if sockets:
        missed.append(f"256 connections: {sockets} socket errors "
                      f"(connect {err['connect']}, read {err['read']}, write {err['write']})")
    if top["status"]["5xx"]:
        missed.append(f"256 connections: {top['status']['5xx']} 5xx answers other than "
                      "overload 503s")
    if not top["status"]["200"]:
        missed.append("256 connections: no request was answered with a 200")
    p99_top, p99_base = top["server_log"]["ok_p99_ms"], base["server_log"]["ok_p99_ms"]
    if p99_top is None or p99_base is None:
        missed.append("no server request log lines for the 200s' p99 (log format changed?)")
    elif p99_top > 3 * p99_base:
        missed.append(f"256 connections: p99 of 200s {p99_top:.1f} ms is over 3x the "
                      f"8-connection p99 ({p99_base:.1f} ms; bound {3 * p99_base:.1f} ms)")
    return missed


def table_mode(args, binary: Path, workdir: Path, servers: list[Server]) -> int:
    steps = args.connections or list(STEPS)
    seconds = args.seconds or 15
    log(cpu_summary())
    log(f"{len(steps)} steps x {seconds} s x 2 series: about "
        f"{2 * (len(steps) * (seconds + 3) + args.warmup + 10)} s")
    rows = []
    variants = [("limit on", {}), ("limit off", {"INFERENCE_CONCURRENCY": "0"})]
    for name, env in variants:
        server = Server(binary, env, workdir, name)
        servers.append(server)
        server.start()
        warm_up(server, args.warmup)
        rows += run_series(server, steps, seconds)
        server.stop()
    print()
    print(f"POST /classify-message, {seconds} s per step, wrk --timeout {WRK_TIMEOUT}, "
          f"threads min(connections, 2); limit on = server defaults, "
          f"limit off = INFERENCE_CONCURRENCY=0; a refused request is retried "
          f"{'after Retry-After' if args.retry_after else 'at once'}")
    print(cpu_summary())
    print()
    print_table(rows, steps, [name for name, _ in variants])
    print()
    notes = []
    for r in rows:
        if r.get("retry_after_missing"):
            notes.append(f"{r['series']}, {r['connections']} connections: "
                         f"{r['retry_after_missing']} overload 503s without Retry-After")
        if r["status"]["other"]:
            notes.append(f"{r['series']}, {r['connections']} connections: "
                         f"{r['status']['other']} answers neither 2xx 200 nor 4xx/5xx")
        if r["settle_s"] > 2:
            notes.append(f"{r['series']}, {r['connections']} connections: the server was busy "
                         f"{r['settle_s']} s after wrk stopped (inferences of abandoned requests)")
        for line in r["server_log"]["problems"][:3]:
            notes.append(f"{r['series']}, {r['connections']} connections, server log: {line}")
    for note in notes:
        print(f"note: {note}")
    print("latency columns: p50/p99/max = wrk, every response within the timeout; "
          "200 p50/p99 = server log, 200s only (see scripts/load.py)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    missed = table_goals(rows)
    if missed:
        print("\nload goals MISSED (limit on):")
        for m in missed:
            print(f"  - {m}")
        return 1 if args.check else 0
    print("\nload goals met (limit on): at 256 connections no timeouts, no socket errors, "
          "no 5xx but overload 503s; p99 of 200s within 3x of 8 connections'")
    return 0


# --- the soak ------------------------------------------------------------------------------

def soak_bound(window_s: float) -> float:
    """The default --max-slope, MiB/h, for a fit over window_s seconds.

    A slope over a short window is mostly noise: RSS moves in steps (glibc malloc arenas and
    stacks of new threads, tokio's blocking pool starting and retiring threads, tract's
    scratch buffers, the allocator keeping freed pages), and one step of 3 MiB within the
    50-s window of a 60-s run reads as over 200 MiB/h; a 60-s run here grew 1.4 MiB, 0.7 MiB
    of it when a thread started. So the bound allows 4 MiB of growth over the fitted window,
    and never less than 25 MiB/h: about 290 MiB/h for a 60-s run, which only a runaway leak
    passes (80 KiB/s: e.g. a KiB or more kept per request), 27 MiB/h for 10 minutes (7.5 KiB/s),
    25 MiB/h for longer runs. A slow leak needs the long soak, and its slope read by a person.
    """
    return max(25.0, 4.0 / max(window_s, 1.0) * 3600)


def least_squares_slope(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def soak_mode(args, binary: Path, workdir: Path, servers: list[Server]) -> int:
    seconds = args.seconds or 600
    connections = (args.connections or [8])[0]
    interval = 5 if seconds < 120 else 10
    log(cpu_summary())
    server = Server(binary, {}, workdir, "soak")
    servers.append(server)
    server.start()
    warm_up(server, args.warmup)
    log(f"  soak: {connections} connections for {seconds} s, RSS every {interval} s")
    samples: list[tuple[float, dict]] = []
    problems: list[str] = []
    ok_latency: list[float] = []

    def drain_log() -> None:
        # Keep the log small (a soak may log millions of lines): read, keep what counts, empty.
        stats = request_log_stats(server.take_log())
        problems.extend(stats["problems"][: max(0, 5 - len(problems))])
        ok_latency.extend(stats["ok_latency"])

    started = time.monotonic()
    proc = Wrk.start(server.url, connections, seconds)
    next_sample = 0.0
    while proc.poll() is None and time.monotonic() - started < seconds + 30:
        elapsed = time.monotonic() - started
        if elapsed >= next_sample:
            if not server.alive():
                raise CannotRun(f"server exited during the soak:\n{server.log_tail()}")
            samples.append((elapsed, server.status()))
            log(f"  t={elapsed:5.0f} s  RSS {samples[-1][1]['VmRSS'] / 1024:7.1f} MiB")
            drain_log()
            next_sample += interval
        time.sleep(min(0.2, max(0.0, next_sample - (time.monotonic() - started))))
    result = Wrk.finish(proc, seconds)
    elapsed = time.monotonic() - started
    if not server.alive():
        raise CannotRun(f"server exited during the soak:\n{server.log_tail()}")
    if elapsed - samples[-1][0] > 1:
        samples.append((elapsed, server.status()))
    drain_log()
    server.stop()
    ok_latency.sort()
    ok = {"ok_p50_ms": percentile(ok_latency, 50), "ok_p99_ms": percentile(ok_latency, 99)}

    skip_until = max(samples[0][0], 0.1 * seconds)
    fitted = [(t, s["VmRSS"] / 1024) for t, s in samples[1:] if t >= skip_until]
    slope_per_s = least_squares_slope(fitted)
    slope = slope_per_s * 3600 if slope_per_s is not None else None
    window = fitted[-1][0] - fitted[0][0] if len(fitted) >= 2 else 0.0
    bound = args.max_slope if args.max_slope is not None else soak_bound(window)

    print()
    print(f"soak: POST /classify-message, {connections} connections for {seconds} s, "
          f"server defaults, wrk --timeout {WRK_TIMEOUT}")
    print(cpu_summary())
    print()
    print("| t (s) | RSS (MiB) | threads | in fit |")
    print("|---:|---:|---:|:---:|")
    for i, (t, s) in enumerate(samples):
        used = "yes" if i > 0 and t >= skip_until else "no"
        print(f"| {t:.0f} | {s['VmRSS'] / 1024:.1f} | {s['Threads']} | {used} |")
    print()
    st, err, lat = result["status"], result["errors"], result["latency_ms"]
    print(f"RSS slope: {'-' if slope is None else f'{slope:+.1f}'} MiB/h (least squares over "
          f"{len(fitted)} samples from t={fitted[0][0] if fitted else skip_until:.0f} s; "
          f"bound {bound:.0f} MiB/h); "
          f"peak RSS (VmHWM) {samples[-1][1]['VmHWM'] / 1024:.1f} MiB")
    print(f"requests: {result['requests']} ({result['requests_per_s']:.1f}/s); "
          f"200: {st['200']}, overload 503: {st['503']}, other 4xx: {st['4xx']}, "
          f"5xx: {st['5xx']}, other: {st['other']}")
    print(f"socket errors: connect {err['connect']}, read {err['read']}, write {err['write']}, "
          f"timeout {err['timeout']}")
    print(f"latency (wrk, all responses): p50 {fmt_ms(lat['p50'])} ms, p99 {fmt_ms(lat['p99'])} "
          f"ms, max {fmt_ms(lat['max'])} ms; 200s (server log): p50 {fmt_ms(ok['ok_p50_ms'])} "
          f"ms, p99 {fmt_ms(ok['ok_p99_ms'])} ms")
    for line in problems:
        print(f"note: server log: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"wrk": result, "samples": samples, "slope_mib_per_h": slope, "bound": bound},
            indent=1) + "\n")
    # The goals are printed always; --check turns a miss into exit 1.
    missed = []
    if st["5xx"]:
        missed.append(f"{st['5xx']} 5xx answers other than overload 503s")
    socket_errors = err["connect"] + err["read"] + err["write"] + err["timeout"]
    if socket_errors:
        missed.append(f"{socket_errors} socket errors (connect {err['connect']}, read "
                      f"{err['read']}, write {err['write']}, timeout {err['timeout']})")
    if not st["200"]:
        missed.append("no request was answered with a 200")
    if slope is None:
        missed.append("too few RSS samples for a slope (run longer)")
    elif slope > bound:
        missed.append(f"RSS grows {slope:.1f} MiB/h, over the bound of {bound:.0f} MiB/h")
    if missed:
        print("\nsoak goals MISSED:")
        for m in missed:
            print(f"  - {m}")
        return 1 if args.check else 0
    print("\nsoak goals met: no 5xx but overload 503s, no socket errors, "
          f"RSS slope within {bound:.0f} MiB/h")
    return 0


# --- main ----------------------------------------------------------------------------------

def parse_args(argv: list[str]):
    p = argparse.ArgumentParser(
        description="Load table (default) or soak of the local tagbeez server, with wrk.",
        epilog="See the module docstring (head of this file) for what each number means.")
    p.add_argument("mode", nargs="?", choices=("table", "soak"), default="table")
    p.add_argument("--seconds", type=int, default=None,
                   help="table: seconds per step (default 15); soak: total (default 600)")
    p.add_argument("--binary", default=os.environ.get("TAGBEEZ_BIN", str(DEFAULT_BINARY)),
                   help="server binary (default $TAGBEEZ_BIN or target/local/tagbeez)")
    p.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")],
                   default=None, help="table: steps, e.g. 1,8,64,256; soak: one number (8)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of wrk warm-up (default 3)")
    p.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    p.add_argument("--max-slope", type=float, default=None,
                   help="soak: RSS slope bound, MiB/h (default: see soak_bound)")
    p.add_argument("--retry-after", action="store_true",
                   help="clients wait Retry-After after an overload 503 (default: retry at once)")
    p.add_argument("--json", default=None, help="also write the raw results to this file")
    p.add_argument("--keep-logs", action="store_true", help="keep the server logs' folder")
    args = p.parse_args(argv)
    if args.seconds is not None and args.seconds < 1:
        p.error("--seconds must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # the table and stderr's progress in order
    Wrk.retry_after = args.retry_after
    binary = Path(args.binary)
    if not binary.is_absolute():
        binary = (Path.cwd() / binary) if (Path.cwd() / binary).exists() else ROOT / binary

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    servers: list[Server] = []
    workdir = Path(tempfile.mkdtemp(prefix="tagbeez-load-"))
    code = 2
    try:
        require_tools(binary)
        # A snapshot: both series run the same build even if cargo replaces the binary meanwhile.
        snapshot = workdir / "tagbeez"
        shutil.copy2(binary, snapshot)
        binary = snapshot
        mode = soak_mode if args.mode == "soak" else table_mode
        code = mode(args, binary, workdir, servers)
    except CannotRun as e:
        print(f"load.py: cannot run: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("load.py: interrupted; server stopped", file=sys.stderr)
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        Wrk.stop()
        for server in servers:
            server.stop()
        (workdir / "tagbeez").unlink(missing_ok=True)
        logs = sorted(workdir.glob("*.log"))
        if logs and (args.keep_logs or code == 2):
            print(f"load.py: server logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
