"""The sandbox: the latency of a trivial run (`print(6 * 7)`) per backend, against the
baseline of the same script run directly by the same interpreter in a plain subprocess.

bubblewrap: new namespaces, the seccomp program, rlimits and a fresh unprivileged uid per run;
WebAssembly: CPython in wasmtime (the compiled module is loaded once, as the control plane
does). Each run includes laying out and removing its work directory.

  python benchmarks/sandbox.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import parse_args, percentile, report
from _rig import HERE  # noqa: F401  (puts the repository on the path)
from warden.sandbox import bwrap, wasm
from warden.sandbox.limits import Limits

CODE = b"print(6 * 7)\n"


def timed(run: object, root: Path, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        done = run(root, CODE, {}, Limits())  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
        assert done.stdout == b"42\n", done.stderr
    return samples


def direct(python: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        out = subprocess.run(
            [python, "-I", "-S", "-c", CODE.decode()], capture_output=True, check=True
        )
        samples.append((time.perf_counter() - started) * 1000)
        assert out.stdout == b"42\n"
    return samples


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 20 if args.quick else 100
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="warden-sandbox-bench-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o711)
        base = direct(bwrap.PYTHON, count)
        figures["direct_run_p50_ms"] = round(statistics.median(base), 2)
        if bwrap.available() is None:
            timed(bwrap.run, root, 3)  # warm
            runs = timed(bwrap.run, root, count)
            figures["bwrap_run_p50_ms"] = round(statistics.median(runs), 2)
            figures["bwrap_run_p99_ms"] = round(percentile(runs, 99), 2)
        if wasm.available() is None:
            started = time.perf_counter()
            wasm.WasmRuntime.get(root / "wasm-cache")  # compiled once, as a server does
            figures["wasm_compile_s"] = round(time.perf_counter() - started, 2)
            timed(wasm.run, root, 2)
            runs = timed(wasm.run, root, max(10, count // 5))
            figures["wasm_run_p50_ms"] = round(statistics.median(runs), 2)
            figures["wasm_run_p99_ms"] = round(percentile(runs, 99), 2)
    rows = [
        ("baseline: python3 -c directly, p50", figures["direct_run_p50_ms"], "ms", ""),
        ("bubblewrap run p50", figures.get("bwrap_run_p50_ms", float("nan")), "ms", "<= 100"),
        ("bubblewrap run p99", figures.get("bwrap_run_p99_ms", float("nan")), "ms", ""),
        ("WebAssembly run p50", figures.get("wasm_run_p50_ms", float("nan")), "ms", ""),
        ("WebAssembly run p99", figures.get("wasm_run_p99_ms", float("nan")), "ms", ""),
        ("WebAssembly module compile (once)", figures.get("wasm_compile_s", float("nan")), "s", ""),
    ]
    report(
        f"Sandbox: a trivial run per backend{' (quick)' if args.quick else ''}",
        rows,
        figures,
        args.json,
    )


if __name__ == "__main__":
    main()
