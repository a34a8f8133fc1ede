"""Optional sampling profile of the server under load (``python -m bench.run --profile``).

Attaches py-spy (``pip install py-spy``; not a project dependency) to the server for the
load phase and writes collapsed stacks, then summarises them by self and inclusive time.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
from pathlib import Path


def start(pid: int, out: Path, *, core: int) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` (None when py-spy is not installed)."""
    spy = shutil.which("py-spy") or str(Path(__import__("sys").executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: no profile (pip install py-spy)")
        return None
    command = ["taskset", "-c", str(core), spy, "record", "--pid", str(pid), "--rate", "250",
               "--format", "raw", "--nonblocking", "--threads", "-o", str(out)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop sampling and let py-spy write its file."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def frame_name(frame: str) -> str:
    """``function (file.py:line)`` shortened to ``function (package/file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def summarise(path: Path, top: int = 25) -> str:
    """Self and inclusive shares of the busy samples, by function (idle waits left out)."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";") if "(" in f]
        if not frames or is_idle(frames[-1]):
            continue
        count = int(count_text)
        total += count
        self_time[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return "no busy samples"
    lines = [f"{total} busy samples", "", "self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_time.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def is_idle(frame: str) -> bool:
    """Frames that mean a thread is waiting, not working."""
    return frame.startswith(("select ", "poll ", "epoll", "wait ", "_wait_for_tstate_lock",
                             "acquire ", "_worker ", "get (queue", "Condition.wait ",
                             "EpollSelector.select ", "Event.wait "))  # fmt: skip
