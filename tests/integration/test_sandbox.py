"""The sandbox's escape suite: each case is a real attempt from inside a run that must fail,
and the run is recorded. Both backends where the attempt applies (WebAssembly has no
processes, no ctypes and no sockets to try).

A backend that does not work here fails these tests when ``WARDEN_EXPECT_BWRAP=1`` (set by
``make test``), instead of skipping them: CI must not pass without the jail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.creds import context_for, write_svid
from tests.support.gateway import with_settings
from warden.audit.reader import LogReader
from warden.identity.authority import IdentityAuthority
from warden.sandbox.limits import Limits
from warden.sandbox.service import RunOutcome, Sandbox, SandboxUnavailable, backends
from warden.server.run import ControlPlaneServer

CODER = "spiffe://example.org/agent/coder-bot"


def _backends() -> list[str]:
    found = backends()
    usable = [name for name, why in found.items() if why is None]
    if os.environ.get("WARDEN_EXPECT_BWRAP") == "1":
        assert found["bwrap"] is None, f"bubblewrap is expected here: {found['bwrap']}"
        # WebAssembly needs nothing from the machine: always expected.
        assert found["wasm"] is None, f"the WebAssembly backend is expected: {found['wasm']}"
    return usable


BACKENDS = _backends()
both = pytest.mark.parametrize("backend", BACKENDS or ["none"])
bwrap_only = pytest.mark.parametrize("backend", ["bwrap"] if "bwrap" in BACKENDS else ["none"])


@pytest.fixture(scope="module")
def sandbox_dir() -> Iterator[Path]:
    # Runs' uids must traverse every parent: not under pytest's private temporary root.
    path = Path(tempfile.mkdtemp(prefix="warden-sandbox-test-"))
    path.chmod(0o711)
    try:
        yield path  # shared: the WebAssembly module is compiled once
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stack(
    sqlite_authority: IdentityAuthority, sandbox_dir: Path
) -> Iterator[tuple[Sandbox, ControlPlaneServer]]:
    authority = with_settings(sqlite_authority, sandbox_dir=sandbox_dir)
    authority.agents.register("coder-bot", owner="qa", groups=["code"])
    authority.agents.register("plain-bot", owner="qa", groups=["finance"])
    plane = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
    try:
        yield Sandbox(authority, plane.policy, plane.log), plane
    finally:
        plane.stop()


def run(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str, code: str, **limits: int
) -> RunOutcome:
    if backend == "none":
        pytest.skip("no sandbox backend works on this machine")
    sandbox, _ = stack
    outcome = sandbox.run(CODER, code.encode(), limits=Limits(**limits), backend=backend)
    assert outcome.decision.allowed, outcome.decision.reasons
    assert outcome.execution is not None
    return outcome


def recorded(stack: tuple[Sandbox, ControlPlaneServer], outcome: RunOutcome) -> dict[str, object]:
    _, plane = stack
    plane.log.checkpoint()
    runs = LogReader(plane.authority.store).search(agent=CODER, kind="sandbox")
    entry = next(e for e in runs if e["decision_id"] == outcome.decision.decision_id)
    assert entry["code_sha256"] == outcome.code_sha256
    return entry


def out(outcome: RunOutcome) -> str:
    assert outcome.execution is not None
    return (outcome.execution.stdout + outcome.execution.stderr).decode(errors="replace")


@both
def test_a_run_is_decided_run_and_recorded(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    if backend == "none":
        pytest.skip("no sandbox backend works on this machine")
    sandbox, plane = stack
    outcome = sandbox.run(
        CODER,
        b"data = open('numbers.txt').read().split()\nprint(sum(map(int, data)))\n"
        b"open('result.txt', 'w').write('done')\n",
        files={"numbers.txt": b"1 2 3 4"},
        backend=backend,
    )
    assert outcome.execution is not None
    assert outcome.execution.stdout == b"10\n" and outcome.execution.reason == "ok"
    assert outcome.execution.outputs == {"result.txt": b"done"}
    entry = recorded(stack, outcome)
    assert entry["ended"] == "ok" and entry["exit_code"] == 0 and entry["backend"] == backend
    assert entry["limits"] == Limits().to_dict() and entry["stdout_excerpt"] == "10\n"
    decision = LogReader(plane.authority.store).decision(outcome.decision.decision_id)
    assert decision is not None and decision["action"] == "code:execute"
    assert decision["context"]["sandbox"]["code_sha256"] == outcome.code_sha256


@both
def test_no_network_at_all(stack: tuple[Sandbox, ControlPlaneServer], backend: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        listener.settimeout(3)
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    waiter = threading.Thread(target=accept)
    waiter.start()
    code = (
        "import socket\n"
        f"for host, port in (('127.0.0.1', {port}), ('1.1.1.1', 53), ('10.255.255.1', 80)):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=1)\n"
        "        print('CONNECTED', host)\n"
        "    except Exception as exc:  # WebAssembly has no socket calls at all\n"
        "        print('refused', host, type(exc).__name__)\n"
    )
    outcome = run(stack, backend, code)
    waiter.join()
    listener.close()
    assert "CONNECTED" not in out(outcome) and out(outcome).count("refused") == 3
    assert accepted == []
    recorded(stack, outcome)


@both
def test_host_files_are_out_of_sight(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    sandbox, _ = stack
    state = sandbox.authority.settings.state_dir.resolve()
    code = (
        f"for path in ('/etc/shadow', '/etc/passwd', '{state}/keys', '{state}/warden.db',"
        f" '{sandbox.authority.settings.sandbox_dir}'):\n"
        "    try:\n"
        "        open(path, 'rb').read(1)\n"
        "        print('READ', path)\n"
        "    except OSError as exc:\n"
        "        print('no', path, type(exc).__name__)\n"
    )
    outcome = run(stack, backend, code)
    assert "READ" not in out(outcome) and out(outcome).count("no ") == 5
    recorded(stack, outcome)


@both
def test_another_runs_files_are_out_of_reach(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    sandbox, _ = stack
    half = uuid.uuid4().hex
    first = run(stack, backend, f"open('secret.txt', 'w').write('{half}' + '{half}')\n")
    assert first.execution is not None
    assert (half * 2).encode() in first.execution.outputs["secret.txt"]
    runs = sandbox.authority.settings.sandbox_dir
    code = (
        "import os\n"
        f"marker = '{half}' * 2\n"
        "found = []\n"
        f"for top in ('/', '{runs}'):\n"
        "    for root, dirs, files in os.walk(top):\n"
        "        if root.startswith(('/proc', '/sys', '/usr', '/dev')):\n"
        "            dirs[:] = []\n"
        "            continue\n"
        "        for name in files:\n"
        "            try:\n"
        "                if marker.encode() in open(os.path.join(root, name), 'rb').read():\n"
        "                    found.append(os.path.join(root, name))\n"
        "            except OSError:\n"
        "                pass\n"
        "print('FOUND' if found else 'nothing', found)\n"
    )
    second = run(stack, backend, code)
    assert "nothing" in out(second), out(second)


@both
def test_nothing_outside_the_work_directory_is_writable(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    code = (
        "for path in ('/usr/evil', '/evil', '/work/../evil', '/etc/evil'):\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print('no', path, type(exc).__name__)\n"
    )
    outcome = run(stack, backend, code)
    assert "WROTE" not in out(outcome), out(outcome)
    assert not Path("/usr/evil").exists() and not Path("/evil").exists()


@both
def test_memory_beyond_the_limit_fails(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    outcome = run(
        stack, backend, "x = bytearray(600 * 1024 * 1024)\nprint('ALLOCATED')\n", memory_mb=128
    )
    assert "ALLOCATED" not in out(outcome) and outcome.execution is not None
    assert outcome.execution.reason != "ok"
    assert recorded(stack, outcome)["ended"] != "ok"


@both
def test_cpu_beyond_the_limit_is_stopped(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    outcome = run(stack, backend, "while True:\n    pass\n", cpu_s=1, wall_s=20)
    assert outcome.execution is not None and outcome.execution.reason == "cpu_time"
    assert outcome.execution.wall_ms < 15_000
    assert recorded(stack, outcome)["ended"] == "cpu_time"


@both
def test_the_wall_clock_ends_a_sleeper(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    code = (
        "import time\n"
        "try:\n"
        "    time.sleep(30)\n"
        "except OSError:  # WebAssembly cannot sleep: it waits busily instead\n"
        "    while True:\n"
        "        pass\n"
        "print('WOKE')\n"
    )
    outcome = run(stack, backend, code, wall_s=1, cpu_s=20)
    assert outcome.execution is not None and outcome.execution.reason == "wall_clock"
    assert "WOKE" not in out(outcome) and outcome.execution.wall_ms < 10_000
    assert recorded(stack, outcome)["ended"] == "wall_clock"


@both
def test_a_huge_file_is_cut_off(stack: tuple[Sandbox, ControlPlaneServer], backend: str) -> None:
    code = (
        "block = b'x' * 1024 * 1024\n"
        "with open('big', 'wb') as f:\n"
        "    for _ in range(200):\n"
        "        f.write(block)\n"
        "print('WROTE ALL')\n"
    )
    outcome = run(stack, backend, code, file_mb=4, wall_s=20)
    assert outcome.execution is not None and "WROTE ALL" not in out(outcome)
    assert outcome.execution.reason in ("file_size", "exit")
    assert len(outcome.execution.outputs.get("big", b"")) <= Limits().output_kb * 1024


@bwrap_only
def test_a_fork_bomb_is_contained(stack: tuple[Sandbox, ControlPlaneServer], backend: str) -> None:
    code = (
        "import os\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "print('HELD')\n"
    )
    outcome = run(stack, backend, code, processes=16, wall_s=10)
    assert outcome.execution is not None and outcome.execution.wall_ms < 10_000
    assert recorded(stack, outcome)


@bwrap_only
def test_ptrace_and_mount_are_refused(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    code = (
        "import ctypes, ctypes.util, os\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"
        "print('ptrace', libc.ptrace(0, 0, 0, 0), ctypes.get_errno())\n"
        "print('mount', libc.mount(b'none', b'/work', b'tmpfs', 0, None), ctypes.get_errno())\n"
        "print('unshare', libc.unshare(0x00020000), ctypes.get_errno())\n"
    )
    outcome = run(stack, backend, code)
    lines = out(outcome).split("\n")
    for call in ("ptrace", "mount", "unshare"):
        line = next(entry for entry in lines if entry.startswith(call))
        assert line.split()[1] == "-1", out(outcome)  # refused
    recorded(stack, outcome)


@bwrap_only
def test_no_process_outlives_its_run(
    stack: tuple[Sandbox, ControlPlaneServer], backend: str
) -> None:
    marker = f"left-behind-{uuid.uuid4().hex}"
    code = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.execv('/usr/bin/python3',\n"
        f"                 ['python3', '-c', 'import time; time.sleep(60)', '{marker}'])\n"
        "    os._exit(0)\n"
        "print('parent leaves')\n"
    )
    outcome = run(stack, backend, code)
    assert "parent leaves" in out(outcome)
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                alive.append(entry.name)
        except OSError:
            continue
    assert alive == []


def test_policy_comes_first_and_refusals_run_nothing(
    stack: tuple[Sandbox, ControlPlaneServer],
) -> None:
    sandbox, plane = stack
    if not BACKENDS:
        pytest.skip("no backend")
    denied = sandbox.run("spiffe://example.org/agent/plain-bot", b"open('/work/ran', 'w')\n")
    assert not denied.decision.allowed and denied.execution is None
    greedy = sandbox.run(CODER, b"print(1)\n", limits=Limits(memory_mb=2048))
    assert not greedy.decision.allowed  # more than the pack's bound
    plane.log.checkpoint()
    reader = LogReader(plane.authority.store)
    assert reader.decision(denied.decision.decision_id)["decision"] == "deny"  # type: ignore[index]
    assert not [
        e for e in reader.search(kind="sandbox") if e["decision_id"] == denied.decision.decision_id
    ]


def test_bad_input_is_refused_before_anything(stack: tuple[Sandbox, ControlPlaneServer]) -> None:
    from warden.errors import UntrustedInputError

    sandbox, _ = stack
    for files in ({"../escape": b"x"}, {"main.py": b"x"}, {"a/b": b"x"}, {".hidden": b"x"}):
        with pytest.raises(UntrustedInputError):
            sandbox.run(CODER, b"print(1)\n", files=files)
    with pytest.raises(UntrustedInputError):
        sandbox.run(CODER, b"")
    with pytest.raises(UntrustedInputError):
        sandbox.run(CODER, b"#" * (300 * 1024))
    with pytest.raises(UntrustedInputError):
        Limits.asked({"cpu_s": 10_000})
    with pytest.raises(UntrustedInputError):
        Limits.asked({"gpus": 1})


def test_no_backend_no_run(stack: tuple[Sandbox, ControlPlaneServer]) -> None:
    sandbox, plane = stack
    off = Sandbox(with_settings(sandbox.authority, sandbox_backend="none"), plane.policy, plane.log)
    with pytest.raises(SandboxUnavailable):
        off.run(CODER, b"print(1)\n")


def test_the_api_runs_code_for_the_calling_agent(
    stack: tuple[Sandbox, ControlPlaneServer], tmp_path: Path
) -> None:
    if not BACKENDS:
        pytest.skip("no backend")
    _, plane = stack
    authority = plane.authority
    creds = write_svid(
        tmp_path / "coder",
        authority.issuer.issue_agent_x509("coder-bot"),
        authority.ca.bundle.to_pem(),
    )
    with httpx.Client(
        base_url=plane.url.replace("127.0.0.1", "localhost"),
        verify=context_for(creds, plane.credentials.ca_file),
        timeout=60,
    ) as agent:
        ran = agent.post("/v1/sandbox/runs", json={"code": "print(2 ** 10)"})
        assert ran.status_code == 200, ran.text
        assert ran.json()["stdout"] == "1024\n" and ran.json()["ended"] == "ok"
        other = agent.post("/v1/sandbox/runs", json={"code": "print(1)", "agent": "plain-bot"})
        assert other.status_code == 403  # an agent runs code as itself only
        bad = agent.post("/v1/sandbox/runs", json={"code": "print(1)", "limits": {"cpu_s": 0}})
        assert bad.status_code == 400
        path_trick = agent.post(
            "/v1/sandbox/runs", json={"code": "print(1)", "files": {"../x": "eA=="}}
        )
        assert path_trick.status_code == 400
        # Agents reach the sandbox, and nothing else of the control plane.
        assert agent.get("/v1/agents").status_code == 403


def test_run_python_as_an_mcp_tool_behind_the_gateway(
    stack: tuple[Sandbox, ControlPlaneServer], tmp_path: Path
) -> None:
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from warden.enforce.routes import parse_routes
    from warden.enforce.server import GatewayServer
    from warden.sandbox.mcp_server import SandboxMcpServer

    if "bwrap" not in BACKENDS and "wasm" not in BACKENDS:
        pytest.skip("no backend")
    sandbox, plane = stack
    authority = sandbox.authority
    tools = SandboxMcpServer(authority, sandbox).start_in_thread()
    routes = parse_routes(
        {
            "routes": [
                {
                    "name": "sandbox",
                    "prefix": "/mcp/sandbox",
                    "protocol": "mcp",
                    "upstream": tools.url,
                    "upstream_id": tools.spiffe_id,
                    "resource": {
                        "type": "Tool",
                        "id": "sandbox",
                        "properties": {
                            "domain": "platform",
                            "classification": "internal",
                            "tags": ["sandbox"],
                        },
                    },
                }
            ]
        }
    )
    gateway = GatewayServer(
        authority, routes=routes, engine=plane.policy, host="127.0.0.1", port=0
    ).start_in_thread()

    async def call(agent: str, code: str) -> Any:
        issued = authority.issuer.issue_agent_x509(agent)
        creds = write_svid(tmp_path / agent, issued, authority.ca.bundle.to_pem())
        verify = context_for(creds, creds / "bundle.pem")
        async with (
            httpx2.AsyncClient(verify=verify, timeout=httpx2.Timeout(30, read=60)) as http,
            Client(
                streamable_http_client(gateway.url + "/mcp/sandbox", http_client=http)
            ) as client,
        ):
            listed = await client.list_tools()
            assert [t.name for t in listed.tools] == ["run_python"]
            return await client.call_tool("run_python", {"code": code})

    try:
        result = asyncio.run(call("coder-bot", "print(sum(range(10)))"))
        assert not result.is_error and result.content[0].text.startswith("45\n")
        # The run is its own decision, for the agent the gateway decided for.
        plane.log.checkpoint()
        runs = LogReader(authority.store).search(agent=CODER, kind="sandbox")
        assert runs and runs[0]["stdout_excerpt"] == "45\n"
        # An agent the policies keep from code is stopped at the gateway.
        with pytest.raises(BaseException):
            asyncio.run(call("plain-bot", "print(1)"))
        gateway.recorder.checkpoint()
        plain = "spiffe://example.org/agent/plain-bot"
        refused = LogReader(authority.store).search(agent=plain, kind="decision")
        assert refused and {e["decision"] for e in refused} == {"deny"}
        assert not LogReader(authority.store).search(agent=plain, kind="sandbox")
    finally:
        gateway.stop()
        tools.stop()


def test_the_cli_runs_code_through_the_control_plane(
    stack: tuple[Sandbox, ControlPlaneServer],
) -> None:
    import json

    from typer.testing import CliRunner

    from warden.cli.main import app
    from warden.stack import write_operator_credential

    if not BACKENDS:
        pytest.skip("no backend")
    _, plane = stack
    authority = plane.authority
    authority.operators.add("admin", role="admin", created_by="test")
    write_operator_credential(authority, "admin")
    state = str(authority.settings.state_dir)
    server = plane.url.replace("127.0.0.1", "localhost")
    runner = CliRunner()
    done = runner.invoke(
        app,
        ["--state-dir", state, "sandbox", "run", "-", "--agent", "coder-bot", "--server", server,
         "--limit", "cpu_s=2"],
        input="print(6 * 7)\n",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "42" in done.output
    refused = runner.invoke(
        app,
        ["--state-dir", state, "sandbox", "run", "-", "--agent", "plain-bot", "--server", server],
        input="print(1)\n",
    )  # fmt: skip
    assert refused.exit_code == 2 and "denied" in refused.output
    bad = runner.invoke(
        app,
        ["--state-dir", state, "sandbox", "run", "-", "--agent", "coder-bot", "--server", server,
         "--limit", "cpu_s=lots"],
        input="print(1)\n",
    )  # fmt: skip
    assert bad.exit_code != 0 and "NAME=NUMBER" in bad.output
    doctor = runner.invoke(app, ["--state-dir", state, "sandbox", "doctor", "--json"])
    assert doctor.exit_code == 0, doctor.output
    assert json.loads(doctor.output)["bwrap"]["works"] == ("bwrap" in BACKENDS)
