"""Measuring candidates on other machines: MetaSchedule's RPCRunner through a TVM RPC tracker.

A team starts a tracker (`python -m tvm.exec.rpc_tracker`) and, on each device, an RPC server that
registers with it under a device key (`python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY`).
`cnndsl tune --rpc-tracker HOST:PORT --rpc-key KEY` then builds candidates here and measures them on every
server of that key, one session per server at a time. Nothing needs a cross compiler here: the builder
writes each candidate's object code for the target (LLVM cross-compiles for any `mtriple`) into a tar,
and the server links it with its own compiler when it loads it (TVM's RPC upload).

Everything that can wait on the network is bounded: the tracker is reached within `CONNECT_TIMEOUT_SEC`
or the run stops with a usage error before any work, a key no server has stops it too, and each
measurement session (connect, upload, run) is killed after `session_timeout_sec` and counts as a failed
trial, so a server that dies mid-run costs its pending trials, never a hang.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any

from tvm.s_tir import meta_schedule as ms

from ...diagnostics import Option, UsageError

CONNECT_TIMEOUT_SEC = 10.0


@dataclass(frozen=True)
class KeyQueue:
    """What the tracker says of one device key: servers registered, free now, and requests waiting."""

    key: str
    total: int
    free: int
    pending: int


@dataclass(frozen=True)
class TrackerState:
    queues: dict[str, KeyQueue]  # by key
    servers: list[tuple[str, str]]  # (address, key) of every registered server

    def describe(self, key: str) -> str:
        queue = self.queues.get(key)
        using = [address for address, server_key in self.servers if server_key == key]
        shown = ", ".join(using[:8]) + (f" and {len(using) - 8} more" if len(using) > 8 else "")
        counts = f"{queue.total} server(s), {queue.free} free, {queue.pending} request(s) queued" if queue else ""
        return f"key {key!r}: {counts}" + (f" ({shown})" if shown else "")


@dataclass(frozen=True)
class Tracker:
    """A TVM RPC tracker and the device key whose servers measure the candidates."""

    host: str
    port: int
    key: str
    session_timeout_sec: int = 120  # one measurement session: connect, upload, time the candidate

    @classmethod
    def parse(cls, address: str, key: str | None, session_timeout_sec: int = 120) -> Tracker:
        """`HOST:PORT` (an IPv6 host in brackets: `[::1]:9190`) and the key; UsageError when malformed."""
        host, sep, port = address.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"the tracker's address {address!r} is not HOST:PORT (e.g. 127.0.0.1:9190)",
                             option=Option.RPC_TRACKER)
        if not key:
            raise UsageError("an RPC tracker needs a device key: the key the device servers registered with",
                             option=Option.RPC_KEY)
        return cls(host, int(port), key, session_timeout_sec)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def state(self) -> TrackerState:
        """The tracker's queues and servers; UsageError when it cannot be reached (bounded by
        CONNECT_TIMEOUT_SEC: an address that drops packets does not hang the run)."""
        summary = self._summary()
        servers = [(_address(info), str(info.get("key", "")).split(":")[-1])  # registered as `server:KEY`
                   for info in summary.get("server_info", [])]
        queues = {}
        for key, info in summary.get("queue_info", {}).items():
            free = int(info.get("free", 0))
            registered = sum(1 for _, server_key in servers if server_key == key)  # free ones and those in a session
            queues[key] = KeyQueue(key, max(registered, free), free, int(info.get("pending", 0)))
        return TrackerState(queues, servers)

    def check_servers(self) -> TrackerState:
        """The tracker's state, after checking that at least one server has the key (UsageError otherwise:
        a request for a key no server has would wait forever)."""
        state = self.state()
        queue = state.queues.get(self.key)
        if queue is None or queue.total == 0:
            known = ", ".join(sorted(k for k, q in state.queues.items() if q.total)) or "none"
            raise UsageError(f"no RPC server has registered with the tracker at {self.address} under the key "
                             f"{self.key!r} (keys with servers: {known}); start one with `python -m "
                             f"tvm.exec.rpc_server --tracker {self.address} --key {self.key}`")
        return state

    def runner(self, workers: int) -> ms.runner.RPCRunner:
        """MetaSchedule's RPC runner: `workers` measurement sessions at a time (one per server)."""
        config = ms.runner.RPCConfig(tracker_host=self.host, tracker_port=self.port, tracker_key=self.key,
                                     session_priority=1, session_timeout_sec=self.session_timeout_sec)
        return ms.runner.RPCRunner(rpc_config=config, max_workers=max(1, workers))

    def _summary(self) -> dict[str, Any]:
        where = f"the RPC tracker at {self.address}"
        try:
            socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_SEC).close()
        except OSError as exc:
            raise UsageError(f"cannot reach {where} ({exc.strerror or exc}); start one with `python -m "
                             f"tvm.exec.rpc_tracker --host {self.host} --port {self.port}`") from exc
        result: dict[str, Any] = {}
        failure: list[BaseException] = []

        def query() -> None:  # TVM's client has no timeout of its own: a thread that may be abandoned
            from tvm import rpc

            try:
                result.update(rpc.connect_tracker(self.host, self.port).summary())
            except Exception as exc:  # the RPC client raises bare errors for a peer that is not a tracker
                failure.append(exc)

        thread = threading.Thread(target=query, daemon=True)
        thread.start()
        thread.join(CONNECT_TIMEOUT_SEC)
        if thread.is_alive() or failure or not result:
            why = f": {failure[0]}" if failure else " (no answer)"
            raise UsageError(f"{where} did not answer as a TVM tracker within {CONNECT_TIMEOUT_SEC:.0f} s{why}")
        return result


def _address(info: dict[str, Any]) -> str:
    address = info.get("addr", ["?", 0])
    return f"{address[0]}:{address[1]}" if isinstance(address, list | tuple) and len(address) == 2 else str(address)
