"""Micro-benchmarks for covet._shmring (not a test; run it directly).

    .venv/bin/python python-sdk/tests/bench_shmring.py

Prints: fence cost, zeroing (ctypes.memset vs slice assignment), payload copy-out
choices, single-process consumer and producer throughput for small records, the
doorbell wake-up round trip between two processes, and a two-process echo rate.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import threading
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from covet import _shmring as sr  # noqa: E402
from shmring_gateway import make_bell, make_memfd  # noqa: E402


def per_call(stmt: str, glb: dict[str, object], number: int = 1_000_000) -> float:
    return min(timeit.repeat(stmt, globals=glb, number=number, repeat=5)) / number * 1e9


def bench_fence() -> None:
    lock = threading.Lock()
    print("fence (ns per call, best of 5):")
    print(f"  empty statement            {per_call('pass', {}):6.1f}")
    print(f"  acquire(); release()       "
          f"{per_call('a(); r()', {'a': lock.acquire, 'r': lock.release}):6.1f}")
    print(f"  _full_fence()              {per_call('f()', {'f': sr._full_fence}):6.1f}")
    mm = mmap.mmap(-1, 4096)
    q = memoryview(mm).cast("Q")
    print(f"  memoryview 'Q' load        {per_call('q[5]', {'q': q}):6.1f}")
    print(f"  memoryview 'Q' store       {per_call('q[5] = 7', {'q': q}):6.1f}")
    q.release()
    mm.close()


def bench_zero_and_copy() -> None:
    mm = mmap.mmap(-1, 1 << 20)
    mv = memoryview(mm)
    cbuf = ctypes.c_char.from_buffer(mm)
    addr = ctypes.addressof(cbuf)
    zero = memoryview(bytes(1 << 16))
    print("zeroing consumed bytes (ns):        ctypes.memset   slice assignment")
    for n in (64, 512, 4096, 65536):
        a = per_call("memset(addr + 64, 0, n)", {"memset": ctypes.memset, "addr": addr, "n": n},
                     100_000)
        b = per_call("mv[64:64 + n] = zero[:n]", {"mv": mv, "zero": zero, "n": n}, 100_000)
        print(f"  {n:6d} bytes                        {a:8.1f}        {b:8.1f}")
    print("payload out (ns):   mm[a:b] (bytes copy)   mv[a:b] (borrowed view)   bytes(mv[a:b])")
    for n in (16, 256, 4096):
        g = {"mm": mm, "mv": mv, "n": n}
        print(f"  {n:5d} bytes        {per_call('mm[64:64 + n]', g):8.1f}"
              f"               {per_call('mv[64:64 + n]', g):8.1f}"
              f"                {per_call('bytes(mv[64:64 + n])', g):8.1f}")
    del cbuf
    mv.release()
    mm.close()


def rig(cap: int) -> tuple[sr.Segment, sr.RingWriter, sr.RingReader, list[sr.Doorbell]]:
    seg = sr.Segment.open(make_memfd(cap, cap))
    bells = [sr.Doorbell(make_bell()), sr.Doorbell(make_bell())]
    w = sr.RingWriter(seg, sr.REQUEST_RING, own=bells[0], peer=bells[1])
    r = sr.RingReader(seg, sr.REQUEST_RING, bells[0])
    return seg, w, r, bells


def bench_throughput() -> None:
    cap = 1 << 20
    for size in (0, 16, 64, 256):
        seg, w, r, bells = rig(cap)
        payload = bytes(size)
        per_fill = cap // ((24 + size + 7) & -8)
        sink = [0]

        def handler(t: int, i: int, f: int, p: bytes) -> None:
            sink[0] += 1

        cons = prod = prod_nowake = 0.0
        total = 0
        for _ in range(10):
            t0 = time.perf_counter()
            for i in range(per_fill):
                w.try_write(17, i, 0, payload)
            prod += time.perf_counter() - t0
            t0 = time.perf_counter()
            while r.poll(handler):
                pass
            cons += time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(per_fill):
                w.try_write(17, i, 0, payload, False)
            prod_nowake += time.perf_counter() - t0
            while r.poll(handler):
                pass
            total += per_fill
        print(f"  payload {size:4d} B: consumer {total / cons / 1e6:5.2f} M rec/s   "
              f"producer {total / prod / 1e6:5.2f} M rec/s (fence per record), "
              f"{total / prod_nowake / 1e6:5.2f} M rec/s (wake=False, one wake per batch)")
        seg.close()
        for b in bells:
            b.close()


def bench_two_process(spin_ns: int, count: int) -> None:
    """Ping-pong (one record each way, waits) and pipelined echo between processes."""
    fd = make_memfd(1 << 16, 1 << 16)
    gfd = os.dup(fd)
    wb, gb = sr.Doorbell(make_bell()), sr.Doorbell(make_bell())
    pid = os.fork()
    if pid == 0:
        seg = sr.Segment.open(fd)
        r = seg.request_reader(gb)
        w = seg.response_writer(wb, gb)
        done = 0

        def echo(t: int, i: int, f: int, p: bytes) -> None:
            nonlocal done
            w.write(sr.RESP_BODY, i, f, p)
            done += 1

        while done < 2 * count:
            if r.poll(echo) == 0:
                r.wait(wb, 1.0, spin_ns)
        os._exit(0)
    seg = sr.Segment.open(gfd)
    w = sr.RingWriter(seg, sr.REQUEST_RING, own=gb, peer=wb)
    r = sr.RingReader(seg, sr.RESPONSE_RING, wb)
    got = [0]

    def take(t: int, i: int, f: int, p: bytes) -> None:
        got[0] += 1

    t0 = time.perf_counter()
    for i in range(count):  # ping-pong: latency
        w.write(sr.REQ_BODY, i, 0, b"x" * 16)
        while not r.poll(take):
            r.wait(gb, 1.0, spin_ns)
    rtt = (time.perf_counter() - t0) / count
    t0 = time.perf_counter()
    sent = 0
    while got[0] < 2 * count:  # pipelined: throughput
        while sent < count and w.try_write(sr.REQ_BODY, sent, 0, b"x" * 16, False):
            sent += 1
        w.wake()
        if not r.poll(take):
            r.wait(gb, 1.0, spin_ns)
    rate = count / (time.perf_counter() - t0)
    os.waitpid(pid, 0)
    seg.close()
    print(f"  spin {spin_ns / 1000:5.1f} us: ping-pong round trip {rtt * 1e6:7.1f} us, "
          f"pipelined echo {rate / 1e3:7.1f} k msg/s")


def main() -> None:
    print(f"python {sys.version.split()[0]}, thread lock: {sys.thread_info.lock}, "
          f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    bench_fence()
    bench_zero_and_copy()
    print("single process, 1 MiB ring, batches of 256:")
    bench_throughput()
    print("two processes, 64 KiB rings, 16 B payloads:")
    for spin in (0, 5_000, 20_000, 50_000, 200_000):
        bench_two_process(spin, 20_000)


if __name__ == "__main__":
    main()
