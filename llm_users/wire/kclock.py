"""Kernel receive timestamps (Linux ``SO_TIMESTAMPNS``) on the ``perf_counter`` clock.

The kernel stamps each TCP segment with CLOCK_REALTIME when it arrives, however busy the
event loop is; :class:`KernelClock` converts those stamps to ``perf_counter`` through an
offset sampled by min-RTT bracketing, re-sampled lazily, with clock steps detected.
"""

from __future__ import annotations

import math
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "SO_TIMESTAMPNS",
    "KernelClock",
    "Offset",
    "enable_timestamps",
    "kernel_supported",
    "sample_offset",
]

# Linux's value on x86, arm, riscv and the other asm-generic architectures (Python's socket
# module does not export it); the cmsg that carries the stamp has the same type.
SO_TIMESTAMPNS = 35
CMSG_SPACE = 64  # one struct timespec (16 bytes) and its cmsghdr, with room to spare
STEP_S = 0.001  # an offset that moved more than this between samples: the clock stepped
MAX_SLEW = 500e-6  # ... beyond what NTP may slew meanwhile (at most 500 ppm)
# Re-sample the offset this often: NTP slews CLOCK_REALTIME by up to 500 ppm (0.5 ms in a
# second at worst, a few microseconds usually); a sample costs a few microseconds.
RESAMPLE_S = 1.0
SAMPLES = 25


def kernel_supported(platform: str | None = None) -> bool:
    """Whether this platform can give kernel receive timestamps (Linux, with recvmsg)."""
    plat = sys.platform if platform is None else platform
    return plat.startswith("linux") and hasattr(socket.socket, "recvmsg")


def enable_timestamps(sock: object) -> bool:
    """Ask the kernel to stamp every segment of ``sock``; False where it cannot."""
    if not kernel_supported() or not hasattr(sock, "recvmsg"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return False
    return True


@dataclass(frozen=True)
class Offset:
    """CLOCK_REALTIME minus perf_counter (seconds), within +- ``uncertainty`` seconds."""

    value: float
    uncertainty: float
    taken_at: float  # perf_counter when it was sampled
    epoch: int = 0  # bumped on every detected clock step


Reader = Callable[[], float]


def _realtime() -> float:
    return time.clock_gettime(time.CLOCK_REALTIME)


def sample_offset(
    perf: Reader = time.perf_counter, real: Reader = _realtime, samples: int = SAMPLES
) -> tuple[float, float, float]:
    """(offset, half-width, perf time) of the narrowest of ``samples`` brackets perf, real, perf."""
    best = (math.inf, 0.0, 0.0)
    for _ in range(samples):
        a = perf()
        r = real()
        b = perf()
        width = b - a
        if width < best[0]:
            mid = (a + b) / 2
            best = (width, r - mid, mid)
    width, offset, at = best
    return offset, width / 2, at


class KernelClock:
    """Converts kernel CLOCK_REALTIME stamps to perf_counter seconds.

    The offset is re-sampled every ``resample_s`` (lazily, on a conversion) and on
    :meth:`resample`; a change larger than ``step_s`` is a clock step (an NTP jump or a
    settimeofday): the epoch is bumped, and a request whose stamps span two epochs is
    timed with its user-space stamps instead (see the client).
    """

    def __init__(
        self,
        perf: Reader = time.perf_counter,
        real: Reader = _realtime,
        *,
        resample_s: float = RESAMPLE_S,
        step_s: float = STEP_S,
        samples: int = SAMPLES,
    ) -> None:
        self._perf, self._real = perf, real
        self.resample_s = resample_s
        self.step_s = step_s
        self.samples = samples
        self.steps = 0  # clock steps detected
        self.max_uncertainty = 0.0  # the largest half-width of any offset used
        self.offset = self._sample(0)

    def _sample(self, epoch: int) -> Offset:
        value, half, at = sample_offset(self._perf, self._real, self.samples)
        self.max_uncertainty = max(self.max_uncertainty, half)
        return Offset(value, half, at, epoch)

    def resample(self) -> Offset:
        """A fresh offset; a new epoch if the clock stepped since the last one."""
        old = self.offset
        new = self._sample(old.epoch)
        allowed = self.step_s + MAX_SLEW * (new.taken_at - old.taken_at)
        if abs(new.value - old.value) > allowed + old.uncertainty + new.uncertainty:
            self.steps += 1
            new = Offset(new.value, new.uncertainty, new.taken_at, old.epoch + 1)
        self.offset = new
        return new

    def reset(self) -> None:
        """A test starts: a fresh offset, and the largest uncertainty counted anew."""
        self.max_uncertainty = 0.0
        self.resample()

    @property
    def epoch(self) -> int:
        return self.offset.epoch

    @property
    def uncertainty_us(self) -> float:
        return self.max_uncertainty * 1e6

    def to_perf(self, real: float, now: float, floor: float) -> float:
        """The perf_counter time of kernel stamp ``real``, read at perf_counter ``now``.

        ``floor``: a time the segment cannot precede (the request was written then). A
        stamp later than ``now`` or earlier than ``floor`` (beyond the uncertainty) means the
        clock stepped since the offset was taken: it is re-sampled (a new epoch). The result
        is kept within [floor, now], which the uncertainty alone may cross.
        """
        off = self.offset
        if now - off.taken_at > self.resample_s:
            off = self.resample()
        t = real - off.value
        if t > now + off.uncertainty or t < floor - off.uncertainty:
            off = self.resample()
            t = real - off.value
        return now if t > now else floor if t < floor else t
