"""kvip's controller in a child process, steered by the bench over a pipe.

A process of its own, as kvip runs in a cluster: the bench's client threads
(creating objects, watching) must not compete with the controller for one
interpreter lock. The child runs the Controller through tests/lab/kvip_rig.py
(its own trio thread, pool sockets opened inside the lab namespace) and
answers one JSON line per command on stdin:

    state  -> {"ready": bool, "queue": n, "pools": {name: {"serving", "used", ...}}, ...}
    probe  -> the same, read from the actors' attributes instead of asking Inspect
    stop   -> {"stopped": true}, then exits

It first prints {"started": t} just before the controller starts and
{"ready": t} once it is ready (time.monotonic(), the same clock in every
process). KVIP_BENCH_LOG=INFO shows kvip's log. With --profile FILE the
controller's trio thread runs under cProfile and the stats go to FILE on stop.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from kvip.actors import Controller, Inspect
from tests.lab.kvip_rig import RunningKvip

REPO = Path(__file__).resolve().parent.parent

#: The longest a start (10,000 reservations) or a state query may take.
START_TIMEOUT = 300.0


class _ProfiledKvip(RunningKvip):
    """RunningKvip whose trio thread (the whole controller) runs under cProfile."""

    def __init__(self, *args: Any, profile: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile = profile

    def _main(self) -> None:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            super()._main()
        finally:
            profiler.disable()
            profiler.dump_stats(self.profile)


async def _state(controller: Controller, *, inspect: bool) -> dict[str, Any]:
    """What the bench waits for. inspect=False reads the actors' counters without
    a message: polling with Inspect (which copies every allocation) would load
    the very controller being measured."""
    pools: dict[str, Any] = {}
    for name, handle in list(controller.supervisor.pools.items()):
        entry: dict[str, Any] = {"started": handle.started.is_set(), "problem": handle.problem}
        actor = handle.actor
        if actor is not None and handle.started.is_set():
            if inspect:
                state = await actor.ask(Inspect())
                entry.update(serving=state.serving, used=state.used)
            else:
                entry.update(serving=actor.serving, used=actor.allocator.used)
        pools[name] = entry
    pool_writer, cfg_writer = controller._pool_status, controller._cfg_status
    return {
        "ready": controller.ready.is_set(),
        "queue": len(controller.queue),
        "pools": pools,
        "pool_status_writes": pool_writer.writes if pool_writer else 0,
        "cfg_status_writes": cfg_writer.writes if cfg_writer else 0,
        "cfg_status_idle": bool(cfg_writer and cfg_writer.idle.is_set()),
        # The whole process (trio thread and API worker threads): load-independent.
        "cpu": time.process_time(),
    }


def _say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kubeconfig", type=Path)
    parser.add_argument("--selector", required=True)
    parser.add_argument("--netns", required=True)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("KVIP_BENCH_LOG", "WARNING"),
        format="kvip %(relativeCreated)8.0fms %(levelname)s %(name)s: %(message)s",
    )
    kwargs: dict[str, Any] = {
        "selector": args.selector,
        "netns": args.netns,
        "ready_timeout": START_TIMEOUT,
        "workers": args.workers,
    }
    kvip = (
        _ProfiledKvip(args.kubeconfig, profile=args.profile, **kwargs)
        if args.profile
        else RunningKvip(args.kubeconfig, **kwargs)
    )
    _say({"started": time.monotonic()})
    with kvip:
        _say({"ready": time.monotonic()})
        for line in sys.stdin:
            command = line.strip()
            if command in ("state", "probe"):
                assert kvip.controller is not None
                inspect = command == "state"
                _say(kvip.call(functools.partial(_state, kvip.controller, inspect=inspect)))
            elif command == "stop":
                break
    _say({"stopped": True})
    return 0


class KvipProcess:
    """The bench's handle on a kvip child: `with KvipProcess(...) as kvip:`."""

    def __init__(
        self,
        kubeconfig: Path,
        *,
        selector: str,
        netns: str,
        profile: Path | None = None,
        workers: int = 8,
    ) -> None:
        argv = [sys.executable, "-m", "bench.ctl_kvip", str(kubeconfig), "--selector", selector]
        argv += ["--netns", netns, "--workers", str(workers)]
        if profile is not None:
            argv += ["--profile", str(profile)]
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, cwd=REPO
        )
        self.started = float(self._read()["started"])
        self.ready = 0.0

    def __enter__(self) -> KvipProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self) -> float:
        """Waits until the controller is ready; returns when it was (monotonic)."""
        self.ready = float(self._read()["ready"])
        return self.ready

    def state(self, *, inspect: bool = True) -> dict[str, Any]:
        """The controller's state; inspect=False: a cheap probe without Inspect."""
        self._send("state" if inspect else "probe")
        return self._read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("stop")
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def _send(self, command: str) -> None:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        while True:
            line = stdout.readline()
            if not line:
                raise RuntimeError(f"kvip exited with {self.proc.wait()}")
            if line.startswith("{"):
                message: dict[str, Any] = json.loads(line)
                return message


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
