"""`check --evidence`: capture the probe traffic of each namespace or local vantage to a pcap.

A capture is a plain AF_PACKET socket opened inside the vantage's namespace (so it sees every
interface there and nothing else), read by one thread per vantage while the probes run, and
written with scapy's RawPcapWriter. Captures are bounded: packets are cut to SNAPLEN bytes
(headers are the evidence; payloads are not needed) and each file stops at MAX_PACKETS, which
the report says. `exec` vantages are remote: nothing is captured there, and the report says so.
Pcaps are private and atomic (files.py); an interrupted run writes none and takes back the
directories it made.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from reachproof.errors import InputError, ReachproofError
from reachproof.files import private_dirs, private_file, remove_created
from reachproof.inventory.model import Inventory, Transport, Vantage

ETH_P_ALL = 0x0003
SNAPLEN = 160
MAX_PACKETS = 500_000
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Capture:
    vantage: str
    path: str
    sha256: str
    packets: int
    truncated: bool  # MAX_PACKETS was reached: later packets are not in the file
    note: str = ""


class _Reader:
    """One vantage's capture: a socket, a thread, the frames it kept."""

    def __init__(self, vantage: Vantage, sock: socket.socket) -> None:
        self.vantage = vantage
        self.sock = sock
        self.frames: list[tuple[float, bytes]] = []
        self.truncated = False
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"capture:{vantage.name}", daemon=True
        )

    def _run(self) -> None:
        self.sock.settimeout(POLL_SECONDS)
        while not self.stop.is_set():
            try:
                frame = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(self.frames) >= MAX_PACKETS:
                self.truncated = True
                continue
            self.frames.append((time.time(), frame[:SNAPLEN]))


def _open(vantage: Vantage) -> socket.socket:
    proto = socket.htons(ETH_P_ALL)
    if vantage.transport is Transport.NETNS and vantage.netns:
        from reachproof.lab.netns import socket_in_netns

        return socket_in_netns(vantage.netns, socket.AF_PACKET, socket.SOCK_RAW, proto)
    return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, proto)


class EvidenceRecorder:
    """Context manager: captures run inside the `with` block; `captures` is filled on exit."""

    def __init__(self, inventory: Inventory, vantages: Iterable[str], directory: Path) -> None:
        self.directory = directory
        self.vantages = [v for name in sorted(set(vantages)) if (v := inventory.vantage(name))]
        self.readers: list[_Reader] = []
        self.captures: list[Capture] = []
        self.created: list[Path] = []

    def __enter__(self) -> EvidenceRecorder:
        try:
            self.created = private_dirs(self.directory)
        except OSError as exc:
            raise InputError(f"{self.directory}: cannot create: {exc.strerror}") from exc
        for vantage in self.vantages:
            if vantage.transport is Transport.EXEC:
                self.captures.append(
                    Capture(vantage.name, "", "", 0, False, "exec vantage: not captured")
                )
                continue
            try:
                reader = _Reader(vantage, _open(vantage))
            except (OSError, ReachproofError) as exc:
                self.captures.append(
                    Capture(vantage.name, "", "", 0, False, f"capture could not start: {exc}")
                )
                continue
            reader.thread.start()
            self.readers.append(reader)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for reader in self.readers:
            reader.stop.set()
        for reader in self.readers:
            reader.thread.join(POLL_SECONDS * 10)
            reader.sock.close()
        if kind is not None:  # the run did not finish: its evidence is no evidence
            remove_created(self.created)
            return
        for reader in self.readers:
            self.captures.append(self._write(reader))
        self.captures.sort(key=lambda c: c.vantage)

    def _write(self, reader: _Reader) -> Capture:
        from scapy.utils import RawPcapWriter

        path = self.directory / f"{reader.vantage.name}.pcap"
        with private_file(path) as handle:
            writer = RawPcapWriter(handle, linktype=1, snaplen=SNAPLEN, sync=False)
            writer.write_header(None)  # an empty capture is still a valid pcap file
            for stamp, frame in reader.frames:
                seconds = int(stamp)
                writer.write_packet(frame, sec=seconds, usec=int((stamp - seconds) * 1e6))
            writer.flush()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return Capture(reader.vantage.name, str(path), digest, len(reader.frames), reader.truncated)
