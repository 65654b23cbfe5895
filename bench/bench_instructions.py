"""The side-by-side phases under valgrind: instructions per request of each server's process
tree, a figure that does not move with what else the machine is doing.

CPU time per request (``bench_side_by_side.py``) is what the issue's goals are about, but on the
shared 2-core machine it drifts by up to a quarter between runs minutes apart, and by half
within an hour: a change worth 3% cannot be seen in it. Callgrind counts the instructions each
process executes, repeatably for the same code and inputs (two counts of one version differ by
well under 1%). It does not count the kernel's work (system calls, the network stack, fsync) or
cache misses, so it tells whether the keeper's own code got cheaper, not by how much its CPU
time falls.

Every server runs under ``valgrind --tool=callgrind --trace-children=yes`` (each worker process
too); before each phase the counters of every process in the server's tree are zeroed
(``callgrind_control --zero``), after it they are dumped and summed. The phases and their calls
are those of ``bench_side_by_side.py`` (same emulator, users, concurrency, fresh databases), at
about a tenth of the counts: under valgrind a server runs some fifty times slower.

  python bench/bench_instructions.py [--stacks guide,sqlite,postgresql] [--signins 100]
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import bench_side_by_side as side
import psutil
from benchlib import Call, Phase

VALGRIND = "valgrind"
#: Phases whose figures are reported (the others warm the servers up or set a phase up).
REPORTED = ("null", "signin", "read", "refresh")


def _tree(pid: int) -> list[int]:
    root = psutil.Process(pid)
    return [root.pid, *(child.pid for child in root.children(recursive=True))]


def _control(option: str, pids: Sequence[int]) -> None:
    for pid in pids:
        # A process not under valgrind (none, with --trace-children) just is not found.
        subprocess.run(
            ["callgrind_control", option, str(pid)], capture_output=True, check=False, timeout=120
        )


_TOTALS = re.compile(rb"^(?:totals|summary): (\d+)", re.MULTILINE)


def _dumped(outdir: Path, seen: set[Path]) -> int:
    """Instructions in the dump files written since the last call."""
    total = 0
    for path in sorted(outdir.glob("callgrind.*")):
        if path in seen:
            continue
        seen.add(path)
        match = _TOTALS.search(path.read_bytes())
        if match:
            total += int(match.group(1))
    return total


def main() -> int:
    if subprocess.run(["which", "callgrind_control"], capture_output=True).returncode != 0:
        print("valgrind (callgrind_control) is not installed: apt-get install valgrind")
        return 1
    outdir = Path(tempfile.mkdtemp(prefix="gk-callgrind-"))
    side.SERVER_PREFIX[:] = [
        VALGRIND,
        "--tool=callgrind",
        "--trace-children=yes",
        f"--callgrind-out-file={outdir}/callgrind.%p",
        "--dump-instr=no",
        "--dump-line=no",
        "--log-file=/dev/null",
    ]
    seen: set[Path] = set()
    figures: dict[str, dict[str, float]] = {}
    measured = side.measure_phase

    def counted(
        name: str, base_url: str, server_pid: int, calls: Sequence[Call], concurrency: int
    ) -> Phase:
        pids = _tree(server_pid)
        if name in REPORTED:
            _dumped(outdir, seen)  # earlier dumps (a stopped server's last) are not this phase's
            _control("--zero", pids)
        phase = measured(name, base_url, server_pid, calls, concurrency)
        if name in REPORTED:
            _control("--dump", pids)
            stack = side.running[0]
            figures.setdefault(stack, {})[name] = _dumped(outdir, seen) / len(calls)
            print(f"  {stack} {name}: done", file=sys.stderr, flush=True)
        return phase

    side.measure_phase = counted
    argv = sys.argv[1:]
    defaults = {"--signins": "100", "--reads": "400", "--refresh-reads": "200", "--null": "400"}
    for option, value in defaults.items():
        if option not in argv:
            argv += [option, value]
    sys.argv = [sys.argv[0], *argv]
    with contextlib.redirect_stdout(io.StringIO()):  # its CPU figures are valgrind's
        status = side.main()
    print("Instructions per request (millions), each server's process tree, under callgrind")
    print(f"{'':<24}{'null':>9}{'sign-in':>9}{'read':>9}{'refresh':>9}")
    for stack, phases in figures.items():
        print(
            f"{stack:<24}" + "".join(f"{phases.get(p, float('nan')) / 1e6:9.2f}" for p in REPORTED)
        )
    if "guide" in figures:
        guide = figures["guide"]
        for stack, phases in figures.items():
            if stack == "guide":
                continue
            ratios = "  ".join(
                f"{p} {phases[p] / guide[p]:.2f}x" for p in REPORTED if guide.get(p) and p in phases
            )
            print(f"  {stack} / guide: {ratios}")
    return status


if __name__ == "__main__":
    sys.exit(main())
