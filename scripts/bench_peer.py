#!/usr/bin/env python3
"""tract (the service's engine) against onnxruntime on the same weights, side by side, in one run.

    make bench-peer                      the shipped model
    make bench-peer MODELS="a.onnx b.onnx"   any tagger graphs (e.g. a distilled student)

Every engine runs in its own process on one message of 8, 16, 32 and 64 tokens, in turn, on
the same machine: the ratios in the last columns are what to read, not the absolute times
(these machines are shared). Rows per model:
- tract in each execution form (`INFERENCE_FORM`): f32 (int8 weights widened at load) and int8
  (int8 products, activations quantized per row), each on one symbolic plan and on per-length
  plans, 1 intra-op thread; the int8 per-length row also on 2 threads. The row `serve` runs on
  this CPU (auto: int8 where the CPU has VNNI or dotprod, else f32, one plan for f32) is marked;
- onnxruntime 1 thread, fp32: the shipped graph with its int8 weights dequantized;
- onnxruntime 1 thread, its own dynamic int8 (MatMulInteger) of that fp32 graph.
The header names the CPU and the flags that decide the form; each tract row names the matrix
kernels tract chose. The onnxruntime peer lives here, in the benchmark tooling, never in the
shipped binary.

`--http` adds the HTTP comparison: `tagbeez serve` (target/local/tagbeez) in the form auto picks
and forced to f32, against a FastAPI + uvicorn + onnxruntime-int8 server on the same weights
(scripts/peer_app.py), all on loopback,
the external messages (../shared/eval/external.jsonl, else the machine-written test split) sent
one at a time over one kept-alive connection each, alternating between the two servers so that
both see the same machine at the same moment; --requests per server, bounded. Before that,
--starts start-ups of each server, timed from process start to its first classification.
Uses the model pipeline's virtualenv (make venv) and examples/tract_tool.rs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "target" / "local" / "examples" / "tract_tool"
LENGTHS = (8, 16, 32, 64)
RUNS = 60


def dequantized(src: Path, dst: Path) -> None:
    """The graph with every constant `DequantizeLinear` replaced by its fp32 result."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    keep, produced = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(n in inits for n in node.input if n):
            q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
            scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) == 1 and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zero = zero.reshape(shape) if np.ndim(zero) == 1 else zero
            produced.append(numpy_helper.from_array((q - zero) * scale, node.output[0]))
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend(produced)
    onnx.save(model, str(dst))


def ort_bench(path: Path) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    started = time.perf_counter()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - started) * 1e3
    p50 = {}
    for n in LENGTHS:
        ids = (2000 + (np.arange(n) * 37) % 5000).astype(np.int64)[None, :]
        ids[0, 0], ids[0, -1] = 101, 102
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        for _ in range(5):
            session.run(None, feed)
        times = []
        for _ in range(RUNS):
            t = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - t) * 1e3)
        p50[str(n)] = float(np.median(times))
    return {"load_ms": load_ms, "p50_ms": p50}


def tract_bench(path: Path, threads: int, plain: bool, form: str = "auto") -> dict:
    env = dict(os.environ, INFERENCE_THREADS=str(threads), INFERENCE_FORM=form)
    cmd = [str(TOOL), "bench", str(path), str(RUNS)] + (["plain"] if plain else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def in_subprocess(kind: str, path: Path) -> dict:
    """onnxruntime in its own process, so that peak memory and load are its own."""
    out = subprocess.run([sys.executable, __file__, "--one", kind, str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


# The /proc/cpuinfo flags that decide the execution form or the kernels tract picks.
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "sve", "sve2")


def cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = text.splitlines()
        name = next((line.split(":", 1)[1].strip() for line in lines
                     if line.startswith(("model name", "CPU part"))), platform.machine())
        flags = set(next(line for line in lines if line.startswith(("flags", "Features"))).split(":", 1)[1].split())
        found = " ".join(f for f in FLAGS if f in flags) or "none of " + " ".join(FLAGS)
        return f"{name}, {os.cpu_count()} cores; flags: {found}"
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def kernel_family(kernels: list[str]) -> str:
    """The families of tract's product kernels in a row: `avx512amx_mmm_i32_16x16` → avx512amx i32."""
    families = sorted({f"{k.split('_mmm_')[0]} {k.split('_mmm_')[1].split('_')[0]}" for k in kernels if "_mmm_" in k})
    return ", ".join(families)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def table(models: list[Path]) -> None:
    print(f"CPU: {cpu()}; one message, median of {RUNS} runs per length; onnxruntime 1 thread\n")
    head = " | ".join(f"{n} tok" for n in LENGTHS)
    ratio = " | ".join(f"/ort-int8 {n}" for n in LENGTHS)
    print(f"| model | engine | kernels | load ms | peak RSS MB | {head} | {ratio} |")
    print("|---|---|---|---:|---:|" + "---:|" * (2 * len(LENGTHS)))
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            fp32, int8 = Path(tmp, f"{model.stem}.fp32.onnx"), Path(tmp, f"{model.stem}.ort-int8.onnx")
            dequantized(model, fp32)
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
            auto = tract_bench(model, 1, True)["form"]
            rows = [
                ("tract f32, one plan", tract_bench(model, 1, True, "f32")),
                ("tract f32, per-length plans", tract_bench(model, 1, False, "f32")),
                ("tract int8, one plan", tract_bench(model, 1, True, "int8")),
                ("tract int8, per-length plans", tract_bench(model, 1, False, "int8")),
                ("tract int8, per-length plans, 2 threads", tract_bench(model, 2, False, "int8")),
                ("onnxruntime fp32", in_subprocess("ort", fp32)),
                ("onnxruntime dynamic int8", in_subprocess("ort", int8)),
            ]
            served = "tract int8, per-length plans" if auto == "int8" else "tract f32, one plan"
            base = rows[-1][1]["p50_ms"]
            for name, r in rows:
                cells = " | ".join(f"{r['p50_ms'][str(n)]:.2f}" for n in LENGTHS)
                ratios = " | ".join(f"{r['p50_ms'][str(n)] / base[str(n)]:.2f}" for n in LENGTHS)
                label = f"**{name}** (`serve` here)" if name == served else name
                rss = r.get("peak_rss_all_plans_mb", r.get("peak_rss_mb", 0))
                print(f"| {model.name} ({model.stat().st_size / 1e6:.1f} MB) | {label} | "
                      f"{kernel_family(r.get('kernels', []))} | {r['load_ms']:.0f} | {rss:.0f} | {cells} | {ratios} |",
                      flush=True)
            rewrites(model, int8)


def rewrites(model: Path, ort_int8: Path) -> None:
    """Each rewrite of the int8 form, side by side in one process (`tract_tool rewrites`)."""
    out = subprocess.run([str(TOOL), "rewrites", str(model), str(ort_int8), str(RUNS * 4)], capture_output=True,
                         text=True, check=True, env=dict(os.environ, INFERENCE_THREADS="1"))
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    print(f"\nEach rewrite, one process, one thread, variants taking turns ({RUNS * 4} runs each); ratios to the "
          "shipped f32 form\n")
    print("| variant | Cast nodes | Mul nodes | 16 tok ms | 32 tok ms | ×f32 at 16 | ×f32 at 32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    by = {(r["variant"], r["tokens"]): r for r in lines}
    names = list(dict.fromkeys(r["variant"] for r in lines))
    for name in names:
        a, b = by[(name, 16)], by[(name, 32)]
        base16, base32 = by[(names[0], 16)]["p50_ms"], by[(names[0], 32)]["p50_ms"]
        print(f"| {name} | {a['cast_nodes']} | {a['mul_nodes']} | {a['p50_ms']:.2f} | {b['p50_ms']:.2f} | "
              f"{a['p50_ms'] / base16:.2f} | {b['p50_ms'] / base32:.2f} |", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_messages() -> list[str]:
    external = REPO.parent / "shared" / "eval" / "external.jsonl"
    path = external if external.exists() else REPO / "model" / "data" / "test.jsonl"
    return [json.loads(line)["message"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def wait_healthy(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    import http.client

    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on {port} not healthy within {seconds} s")


def http_get(port: int, path: str) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    return conn.getresponse().read().decode()


def peak_rss_of(pid: int) -> float:
    """A running process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def first_answer(cmd: list[str], env: dict, port: int, body: str, seconds: float = 60) -> tuple[float, float]:
    """Milliseconds from starting `cmd` to its first 200 on POST /classify-message (polled every
    2 ms), and its peak RSS in MB at that moment. The process is stopped before returning."""
    import http.client

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{cmd[0]} exited with {proc.returncode} before answering")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/classify-message", body, {"content-type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return (time.perf_counter() - start) * 1e3, peak_rss_of(proc.pid)
                raise SystemExit(f"{cmd[0]} answered {response.status}")
            except OSError:
                if time.perf_counter() - start > seconds:
                    raise SystemExit(f"{cmd[0]} did not answer within {seconds} s")
                time.sleep(0.002)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def http_table(model: Path, requests: int, starts: int) -> None:
    import http.client

    from onnxruntime.quantization import QuantType, quantize_dynamic

    binary = Path(os.environ.get("TAGBEEZ_BIN", REPO / "target" / "local" / "tagbeez"))
    messages = http_messages()
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp, "peer.fp32.onnx"), Path(tmp, "peer.int8.onnx")
        dequantized(model, fp32)
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        ours, ours_f32, theirs = free_port(), free_port(), free_port()
        env = dict(os.environ, PORT=str(ours), HOST="127.0.0.1", METRICS="off", LOG_LEVEL="warn",
                   INFERENCE_FORM="auto")
        env.pop("TABLE_NAME", None)
        env_f32 = dict(env, PORT=str(ours_f32), INFERENCE_FORM="f32")
        peer_env = dict(os.environ, PEER_ONNX=str(int8), PEER_TOKENIZER=str(REPO / "model" / "tokenizer.json"),
                        PEER_LABELS=str(REPO / "model" / "labels.json"), OMP_NUM_THREADS="1")
        commands = {
            "tagbeez": ([str(binary), "serve"], env, ours),
            "tagbeez-f32": ([str(binary), "serve"], env_f32, ours_f32),
            "fastapi": ([sys.executable, "-m", "uvicorn", "peer_app:app", "--app-dir", str(REPO / "scripts"),
                         "--host", "127.0.0.1", "--port", str(theirs), "--log-level", "warning"], peer_env, theirs),
        }
        body = json.dumps({"message": messages[0]})
        started = {name: [] for name in commands}
        names = list(commands)
        for i in range(starts):
            for name in names[i % 3:] + names[:i % 3]:
                started[name].append(first_answer(*commands[name], body))
        procs = [subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for cmd, e, _ in commands.values()]
        try:
            for (_, _, port), proc in zip(commands.values(), procs):
                wait_healthy(port, proc)
            form = json.loads(http_get(ours, "/"))["inference"]
            conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                     for name, (_, _, port) in commands.items()}
            times = {name: [] for name in conns}
            for i in range(requests + 30):
                body = json.dumps({"message": messages[i % len(messages)]})
                for name in names[i % 3:] + names[:i % 3]:
                    t = time.perf_counter()
                    conns[name].request("POST", "/classify-message", body, {"content-type": "application/json"})
                    response = conns[name].getresponse()
                    response.read()
                    if response.status != 200:
                        raise SystemExit(f"{name} answered {response.status}")
                    if i >= 30:
                        times[name].append((time.perf_counter() - t) * 1e3)
            steady_rss = {name: peak_rss_of(proc.pid) for name, proc in zip(commands, procs)}
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    labels = (("tagbeez", f"tagbeez serve, auto: {form['form']}"), ("tagbeez-f32", "tagbeez serve, INFERENCE_FORM=f32"),
              ("fastapi", "FastAPI + uvicorn + onnxruntime int8"))
    print(f"\ntagbeez serve's form: {form['form']} ({form['reason']})")
    print(f"\nStart-up: process start to the first 200 on POST /classify-message (polled every 2 ms), {starts} "
          "starts each, alternating\n")
    print("| server | median ms | min ms | max ms | peak RSS at first answer MB | peak RSS after the run MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, label in labels:
        ms = np.array([t for t, _ in started[name]])
        rss = np.median([r for _, r in started[name]])
        print(f"| {label} | {np.median(ms):.0f} | {ms.min():.0f} | {ms.max():.0f} | {rss:.0f} | "
              f"{steady_rss[name]:.0f} |")
    print(f"\nHTTP, POST /classify-message, {requests} messages each one at a time on loopback, alternating\n")
    print("| server | p50 ms | p90 ms | p99 ms | p50 / FastAPI |")
    print("|---|---:|---:|---:|---:|")
    base = float(np.median(times["fastapi"]))
    for name, label in labels:
        t = np.array(times[name])
        print(f"| {label} | {np.median(t):.2f} | {np.percentile(t, 90):.2f} | {np.percentile(t, 99):.2f} | "
              f"{np.median(t) / base:.2f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", type=Path, default=[REPO / "model" / "tagger.onnx"])
    p.add_argument("--http", action="store_true", help="also the HTTP comparison against a FastAPI peer")
    p.add_argument("--requests", type=int, default=400, help="HTTP requests per server (at most 5000)")
    p.add_argument("--starts", type=int, default=7, help="start-ups timed per server (at most 50)")
    p.add_argument("--one", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        result = ort_bench(Path(args.one[1]))
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0
    table(args.models)
    if args.http:
        http_table(args.models[0], min(args.requests, 5000), max(1, min(args.starts, 50)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
