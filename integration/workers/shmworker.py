"""The worker side of the handshake, shared by the test workers in this folder.

attach() registers as a real worker does (HELLO, WELCOME with the memfd and
doorbells), maps the segment and stores worker_state = ready.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from covet import _proto, _shmring


class Attached(NamedTuple):
    ctl: _proto.ControlChannel
    seg: _shmring.Segment
    worker_bell: _shmring.Doorbell
    gateway_bell: _shmring.Doorbell
    reader: _shmring.RingReader
    writer: _shmring.RingWriter


def attach(app: str, routes: list[dict[str, Any]]) -> Attached:
    ctl = _proto.ControlChannel.from_env()
    ctl.hello(app, routes)
    welcome, (memfd, wfd, gfd) = ctl.recv_welcome()
    seg = _shmring.Segment.open(memfd, welcome._asdict())
    worker_bell = _shmring.Doorbell(wfd)
    gateway_bell = _shmring.Doorbell(gfd)
    reader = seg.request_reader(gateway_bell)
    writer = seg.response_writer(worker_bell, gateway_bell)
    seg.set_heartbeat()
    seg.set_state(_shmring.STATE_READY)
    return Attached(ctl, seg, worker_bell, gateway_bell, reader, writer)
