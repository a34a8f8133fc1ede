"""Child processes of the benchmark: start pinned to a core, wait for the port, stop, sample."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
# Every child ever started, so an interrupted run can still stop them all.
_children: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Block until something accepts on ``port``; raise if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.args}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout:.0f} s")


@dataclass
class Child:
    """A started child process, pinned to one core, with its log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def ps(self) -> psutil.Process:
        """The psutil handle (``taskset`` execs, so the pid is the server itself)."""
        return psutil.Process(self.proc.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        stop_process(self.proc, timeout)


# Niceness of every benchmark process (root only): the machine may be shared, and other
# work on our cores would be measured as our latency. 0 leaves priorities alone.
NICE = int(os.environ.get("BENCH_NICE", "-10"))


def raise_priority() -> None:
    """Give this process the benchmark's niceness, if allowed."""
    if NICE:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, NICE)


def start(
    args: list[str], *, core: int, port: int, env: dict[str, str], log: Path, timeout: float = 60
) -> Child:
    """Start ``python <args>`` on ``core`` and wait until it listens on ``port``."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    # Children inherit our niceness (raise_priority), so no ``nice`` wrapper is needed.
    command = ["taskset", "-c", str(core), sys.executable, *args]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    _children.append(proc)
    try:
        wait_for_port(port, proc, timeout)
    except BaseException:
        stop_process(proc, 5)
        raise
    return Child(proc, port, log)


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop one child (and its process group) we started."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc in _children:
        _children.remove(proc)


def stop_all() -> None:
    """Stop every child still running (on exit or interrupt)."""
    for proc in list(_children):
        stop_process(proc, 5)


def run_python(args: list[str], *, env: dict[str, str], timeout: float) -> None:
    """Run ``python <args>`` to completion (e.g. preparing a database)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=full_env, check=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def cpu_seconds(ps: psutil.Process) -> float:
    """User + system CPU time of a process so far."""
    times = ps.cpu_times()
    return float(times.user + times.system)


def machine_busy_seconds() -> float:
    """CPU-seconds every process on the machine has used (all cores)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class Footprint:
    """Memory and threads of a process at one moment."""

    rss: int
    threads: int
    fds: int


def footprint(ps: psutil.Process) -> Footprint:
    """The process's resident memory, OS threads and open file descriptors now."""
    return Footprint(ps.memory_info().rss, ps.num_threads(), ps.num_fds())
