"""Real servers for integration tests: Chroma, Postgres and the LangGraph dev server.

Each starts on 127.0.0.1 on a port picked here (never the tool's default, which a developer's
own server may hold), is waited on until it answers, and is stopped (its whole process group)
when the fixture ends. Nothing is mocked. The executables come from the virtual environment the
tests run in (the bin directory of ``sys.executable``), so ``make test`` uses its own ``.venv``.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds a server may take to become ready before the test fails (cold starts on CI).
READY_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def venv_executable(name: str) -> str:
    """``name`` from the running interpreter's bin directory, else from PATH; fail if absent."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name!r} is not installed in {beside.parent} nor on PATH (pip install '.[dev]')")
    return found


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ServerProcess:
    """A server started in its own process group, logging to a file."""

    name: str
    command: list[str]
    log: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() reaches every child
            )

    def wait_http(self, url: str, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``url`` until it answers 200; fail with the server's log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                    + _tail(self.log)
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"{self.name} not ready at {url} after {timeout:.0f}s:\n" + _tail(self.log))

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- Chroma


@dataclass
class ChromaServer:
    """A ``chroma run`` server over a data directory; restartable on the same directory."""

    path: Path
    port: int
    server: ServerProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server.start()
        self.server.wait_http(f"{self.url}/api/v2/heartbeat")

    def stop(self) -> None:
        self.server.stop()


def start_chroma(path: Path) -> ChromaServer:
    """Start ``chroma run --path PATH`` on a free 127.0.0.1 port and wait for its heartbeat."""
    path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = ServerProcess(
        name="chroma",
        command=[
            venv_executable("chroma"),
            "run",
            "--path",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        log=path.parent / f"chroma-{port}.log",
        cwd=path.parent,
        env={"ANONYMIZED_TELEMETRY": "False"},
    )
    chroma = ChromaServer(path=path, port=port, server=server)
    chroma.start()
    return chroma


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One Chroma server per test module, over a fresh temporary directory."""
    chroma = start_chroma(tmp_path_factory.mktemp("chroma") / "data")
    try:
        yield chroma
    finally:
        chroma.stop()


# --------------------------------------------------------------------------- Postgres


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server binaries (Debian layout first, then PATH)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def major(path: str) -> int:
        part = Path(path).parts[-3]
        return int(part) if part.isdigit() else 0

    if found:
        return Path(max(found, key=major)).parent
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them, e.g. "
        "`apt-get install -y postgresql` (CI's .ci/run does this)"
    )


@dataclass
class PostgresServer:
    root: Path
    port: int
    user: str = "pahf"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"


def _run_as(account: str | None) -> list[str]:
    """Command prefix running as ``account`` (Postgres refuses to run as root)."""
    if account is None:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root needs `runuser` (util-linux) to start Postgres as a user")
    return [runuser, "-u", account, "--"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster in a temp dir on a free port (trust auth, no fsync)."""
    bin_dir = postgres_bin_dir()
    account: str | None = None
    root = Path(tempfile.mkdtemp(prefix="pahf-pg-"))
    if os.geteuid() == 0:
        account = "postgres"
        try:
            entry = pwd.getpwnam(account)
        except KeyError:
            account = "nobody"
            entry = pwd.getpwnam(account)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    prefix = _run_as(account)
    data, log = root / "data", root / "server.log"
    server = PostgresServer(root=root, port=free_port())

    def run(*args: str) -> None:
        done = subprocess.run(
            [*prefix, *args],
            cwd=root,  # the server's account may not be allowed into the test's cwd
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                + _tail(log)
            )

    run(
        str(bin_dir / "initdb"),
        "-D", str(data),
        "-U", server.user,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    )  # fmt: skip
    options = (
        f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
        "start")  # fmt: skip
    try:
        yield server
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            cwd=root,
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- LangGraph server


@dataclass
class LangGraphServer:
    """``langgraph dev`` serving this repo's ``langgraph.json`` from a scratch directory."""

    url: str
    workdir: Path
    memory_dir: Path
    server: ServerProcess

    def stop(self) -> None:
        self.server.stop()


def served_config(workdir: Path) -> Path:
    """The repo's ``langgraph.json`` with its relative paths made absolute, written to
    ``workdir``: the dev server keeps its state (``.langgraph_api/``) in its working
    directory, which must be a scratch one, not the repository. Everything else is verbatim."""
    config: dict[str, Any] = json.loads((REPO_ROOT / "langgraph.json").read_text())

    def absolute(spec: str) -> str:
        return str((REPO_ROOT / spec).resolve()) if spec.startswith(".") else spec

    config["dependencies"] = [absolute(dep) for dep in config.get("dependencies", [])]
    config["graphs"] = {
        graph_id: absolute(spec) if isinstance(spec, str) else spec
        for graph_id, spec in config["graphs"].items()
    }
    if "auth" in config:
        config["auth"] = {**config["auth"], "path": absolute(config["auth"]["path"])}
    target = workdir / "langgraph.json"
    target.write_text(json.dumps(config, indent=2))
    return target


def start_langgraph(workdir: Path, env: dict[str, str] | None = None) -> LangGraphServer:
    """Start ``langgraph dev --no-browser`` on a free port; PAHF_MEMORY is a dir in workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    memory_dir = workdir / "memory"
    port = free_port()
    server = ServerProcess(
        name="langgraph dev",
        command=[
            venv_executable("langgraph"),
            "dev",
            "--no-browser",
            "--no-reload",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--config",
            str(served_config(workdir)),
        ],
        log=workdir / "server.log",
        cwd=workdir,
        env={
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_NO_VERSION_CHECK": "true",
            "ANONYMIZED_TELEMETRY": "False",
            "PAHF_MEMORY": str(memory_dir),
            **(env or {}),
        },
    )
    server.start()
    url = f"http://127.0.0.1:{port}"
    server.wait_http(f"{url}/ok")
    return LangGraphServer(url=url, workdir=workdir, memory_dir=memory_dir, server=server)


@pytest.fixture(scope="module")
def langgraph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LangGraphServer]:
    """One LangGraph dev server per test module."""
    server = start_langgraph(tmp_path_factory.mktemp("langgraph"))
    try:
        yield server
    finally:
        server.stop()
