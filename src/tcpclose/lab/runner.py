"""Runs a scenario for real: start the programs, capture their port, script the client,
wait for both to end, merge packets and events into a timeline, judge it."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from tcpclose.capture import CaptureResult, start_capture
from tcpclose.errors import TcpcloseError, sigterm_raises
from tcpclose.lab.processes import Child, ProcessOutcome, allow_children, stop_all
from tcpclose.lab.scenarios import Scenario
from tcpclose.lab.verdicts import LabVerdict, judge
from tcpclose.model.event import AppEvent, read_events
from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Timeline

#: lesson time scale by default: the server answers after 0.5 s instead of 5 s
DEFAULT_SPEED = 0.1
LESSON_DELAY = 5.0
LESSON_CLOSE_WAIT = 6.0
#: how long any one wait may take before the run is declared stuck (generous: loaded machines)
STEP_TIMEOUT = 20.0


#: each run's private directory is TEMP_PREFIX<pid>-<scenario>-XXXXXXXX under the temp directory
TEMP_PREFIX = "tcpclose-lab-"
#: the temp directories a tcpclose killed by SIGKILL left: its lab runs', its tcpdumps' and
#: its drain runs'
_LEFT_BEHIND = re.compile(r"tcpclose-(?:lab|tcpdump|drain)-(\d+)-")


class LabError(TcpcloseError):
    """A scenario did not run as scripted (a program did not start, hung, or died early)."""


@dataclass(frozen=True)
class LabRun:
    """Everything one run produced."""

    scenario: Scenario
    speed: float
    timeline: Timeline
    client: ProcessOutcome
    server: ProcessOutcome
    capture: CaptureResult
    events: tuple[AppEvent, ...]
    verdict: LabVerdict

    @property
    def received(self) -> list[str]:
        """What the client received, one entry per read, as text."""
        return [
            str(e.get("data", ""))
            for e in self.events
            if e.role == "client" and e.event == "received"
        ]


class _EventTail:
    """Reads an --events file as it grows; `wait_for` polls it until a condition holds."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self) -> list[AppEvent]:
        return read_events(self.path)

    def count(self, role: str, name: str) -> int:
        return sum(1 for e in self.events() if e.role == role and e.event == name)

    def wait_for(self, what: str, ready: Callable[[], bool], alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT
        while not ready():
            if not alive():
                if ready():
                    return
                raise LabError(f"a program ended before {what}")
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {STEP_TIMEOUT:.0f} s waiting for {what}")
            time.sleep(0.005)


def _listening_port(tail: _EventTail, child: Child) -> int:
    tail.wait_for(
        "the listening socket", lambda: tail.count("server", "listening") > 0, lambda: child.running
    )
    event = next(e for e in tail.events() if e.event == "listening")
    return int(event.get("port"))


#: the client's commands that end its side of the connection
_ENDINGS = ("close", "shutdown", "abort")


def check_script_followed(scenario: Scenario, events: Sequence[AppEvent], speed: float) -> None:
    """A script types its ending command (close, shutdown, abort) when the client has received
    exactly the answers the script waited for: none, unless it awaited some. On a machine too
    loaded for the time scale an answer may slip in first, and the run would show another
    experiment; refuse it instead of judging it."""
    expected = 0
    for step in scenario.script:
        if step[:3] == ("await", "client", "received"):
            expected = int(step[3])
        if step[0] == "type" and step[1] in _ENDINGS:
            ending = next((e for e in events if e.role == "client" and e.event == step[1]), None)
            if ending is None:
                return  # the client ended otherwise; its outcome will say how
            got = sum(
                1
                for e in events
                if e.role == "client" and e.event == "received" and e.t_ns < ending.t_ns
            )
            if got != expected:
                raise LabError(
                    f"{scenario.name} did not follow its script: {got} answers had arrived "
                    f"when `{step[1]}` was typed, not {expected} (the machine was too busy for "
                    f"--speed {speed:g}: try a larger one)"
                )
            return


def _killed_events(*outcomes: ProcessOutcome) -> list[AppEvent]:
    """A death by signal leaves no event of its own: add one at the moment it was seen."""
    return [
        AppEvent(o.ended_ns, o.role, "killed", {"signal": o.signal}) for o in outcomes if o.signal
    ]


def _run_lesson(
    scenario: Scenario, speed: float, workdir: Path, capture_methods: Sequence[str]
) -> tuple[ProcessOutcome, ProcessOutcome, CaptureResult, Path]:
    events_path = workdir / "events.jsonl"
    tail = _EventTail(events_path)
    server = Child(
        "server",
        "tcpclose.lesson.server",
        [
            "--port",
            "0",
            "--delay",
            f"{LESSON_DELAY * speed:g}",
            "--sigpipe",
            scenario.sigpipe,
            "--events",
            str(events_path),
        ],
        workdir,
    )
    client: Child | None = None
    session = None
    try:
        port = _listening_port(tail, server)
        session = start_capture([port], methods=capture_methods)
        client = Child(
            "client",
            "tcpclose.lesson.client",
            [
                "127.0.0.1",
                "--port",
                str(port),
                "--close-wait",
                f"{LESSON_CLOSE_WAIT * speed:g}",
                "--events",
                str(events_path),
            ],
            workdir,
        )
        both_alive = lambda: client.running and server.running  # noqa: E731
        tail.wait_for("the connection", lambda: tail.count("client", "connected") > 0, both_alive)
        for step in scenario.script:
            if step[0] == "type":
                client.send_line(step[1])
            else:
                _, role, name, n = step
                count = int(n)
                tail.wait_for(
                    f"{role} {name} #{count}",
                    _count_reached(tail, str(role), str(name), count),
                    both_alive,
                )
        client.close_stdin()
        deadline = STEP_TIMEOUT + 3 * (LESSON_DELAY + LESSON_CLOSE_WAIT) * speed
        for child in (client, server):
            if not child.wait(deadline):
                raise LabError(f"the {child.role} did not end within {deadline:.0f} s")
    finally:
        children = [child for child in (client, server) if child is not None]
        for child in children:
            child.kill()
        outcomes = [child.outcome() for child in children]  # also closes their files
        capture = session.stop() if session is not None else None
    assert capture is not None and len(outcomes) == 2
    return outcomes[0], outcomes[1], capture, events_path


def _run_actor(
    scenario: Scenario, workdir: Path, capture_methods: Sequence[str]
) -> tuple[ProcessOutcome, ProcessOutcome, CaptureResult, Path]:
    events_path = workdir / "events.jsonl"
    tail = _EventTail(events_path)
    actor = Child(
        "server", "tcpclose.lab.actors", [scenario.name, "--events", str(events_path)], workdir
    )
    session = None
    try:
        port = _listening_port(tail, actor)
        session = start_capture([port], methods=capture_methods)
        actor.send_line("go")
        if not actor.wait(STEP_TIMEOUT):
            raise LabError(f"actor {scenario.name} did not end within {STEP_TIMEOUT:.0f} s")
    finally:
        actor.kill()
        outcome = actor.outcome()  # also closes its files
        capture = session.stop() if session is not None else None
    assert capture is not None
    if outcome.exit_status != 0:
        raise LabError(f"actor {scenario.name} failed: {outcome.stderr.strip()[-300:]}")
    # One process plays both roles: each role's outcome is that process's.
    return replace(outcome, role="client"), outcome, capture, events_path


def run_scenario(
    scenario: Scenario,
    *,
    speed: float = DEFAULT_SPEED,
    capture_methods: Sequence[str] = ("af_packet", "tcpdump"),
) -> LabRun:
    """Run one scenario for real and judge it."""
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-{scenario.name}-") as tmp:
        workdir = Path(tmp)
        if scenario.kind == "lesson":
            client, server, capture, events_path = _run_lesson(
                scenario, speed, workdir, capture_methods
            )
        else:
            client, server, capture, events_path = _run_actor(scenario, workdir, capture_methods)
        events = read_events(events_path) + _killed_events(client, server)
    check_script_followed(scenario, events, speed)
    listening = next((e for e in events if e.event == "listening"), None)
    server_endpoint = None
    if listening is not None:
        server_endpoint = (str(listening.get("address")), int(listening.get("port")))
    packets = _of_the_run(capture.packets, server_endpoint, events)
    # The clock starts at the first packet (or the connection, without a capture).
    starts = [p.t for p in packets[:1]] + [
        e.t for e in events if e.event in ("connected", "accepted")
    ][:1]
    timeline = Timeline.build(
        packets, events, server=server_endpoint, start=min(starts) if starts else None
    )
    verdict = judge(scenario, timeline, client, server)
    return LabRun(scenario, speed, timeline, client, server, capture, tuple(events), verdict)


def _of_the_run(
    packets: Sequence[Packet], server: tuple[str, int] | None, events: Sequence[AppEvent]
) -> list[Packet]:
    """The packets of the run's one connection. The capture filter names ports only, so other
    loopback traffic that happens to use the same port number (as a client's ephemeral port,
    from another 127.x address) is captured too; and another connection may reach the same
    server port (one left over from an earlier run whose server had that port, still sending
    its last segments). Neither may reach the timeline: the connection kept is the one of the
    client's logged local port, else the one whose SYN came last before the client's
    connect() returned, else the one with the most packets."""
    ours = [p for p in packets if server in (p.src_endpoint, p.dst_endpoint)]
    if not ours:
        return list(packets)  # no packet names it: the server's address differs
    by_client: dict[tuple[str, int], list[Packet]] = {}
    for p in ours:
        client = p.dst_endpoint if p.src_endpoint == server else p.src_endpoint
        by_client.setdefault(client, []).append(p)
    if len(by_client) == 1:
        return ours
    connected = next((e for e in events if e.role == "client" and e.event == "connected"), None)
    if connected is not None:
        port = connected.get("local_port")
        for endpoint, group in by_client.items():
            if port is not None and endpoint[1] == int(port):
                return group
        connected_at = connected.t_ns / 1e9
        last_syn: dict[tuple[str, int], float] = {}
        for endpoint, group in by_client.items():
            syns = [p.t for p in group if p.syn and not p.has_ack and p.t <= connected_at]
            if syns:
                last_syn[endpoint] = max(syns)
        if last_syn:
            return by_client[max(last_syn, key=lambda endpoint: last_syn[endpoint])]
    return max(by_client.values(), key=len)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_left_behind(root: Path | None = None) -> list[Path]:
    """Remove the temp directories of lab runs whose tcpclose process is gone (it was killed
    by SIGKILL and could not clean up); returns what was removed. Directories of processes
    still running, and of other users, are left alone."""
    removed: list[Path] = []
    base = Path(root or tempfile.gettempdir())
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _LEFT_BEHIND.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        try:
            if not entry.is_dir() or entry.is_symlink() or entry.stat().st_uid != os.geteuid():
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def run_many(
    scenarios: Iterable[Scenario],
    *,
    speed: float = DEFAULT_SPEED,
    capture_methods: Sequence[str] = ("af_packet", "tcpdump"),
    jobs: int = 8,
    on_done: Callable[[LabRun], None] | None = None,
) -> list[LabRun]:
    """Run scenarios concurrently (each has its own processes, port and capture filter);
    results come back in the order given."""
    scenarios = list(scenarios)
    sweep_left_behind()
    allow_children()

    def one(scenario: Scenario) -> LabRun:
        run = run_scenario(scenario, speed=speed, capture_methods=capture_methods)
        if on_done is not None:
            on_done(run)
        return run

    with sigterm_raises():  # already so under the CLI; for library callers too
        pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(scenarios))))
        try:
            futures = [pool.submit(one, scenario) for scenario in scenarios]
            return [future.result() for future in futures]
        except BaseException:
            # Ctrl-C, SIGTERM, or one scenario failed: end the others now rather than wait for
            # them (each scenario's thread then removes its temp directory).
            stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _count_reached(tail: _EventTail, role: str, name: str, n: int) -> Callable[[], bool]:
    """A predicate: has `role` logged `name` at least `n` times?"""
    return lambda: tail.count(role, name) >= n
