"""The bench's peak-memory probe: growth inside the block only, with or without the kernel's
resettable peak."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cardsim import bench
from cardsim.bench import PeakRss

MB = 1 << 20


def _touch(megabytes: int) -> np.ndarray:
    return np.ones(megabytes * MB, np.uint8)


@pytest.mark.parametrize("kernel_peak", [True, False])
def test_peak_counts_what_the_block_allocated_and_freed(
    kernel_peak: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kernel_peak and not bench._reset_peak():
        pytest.skip("this kernel does not let a process reset its peak resident size")
    if not kernel_peak:
        monkeypatch.setattr(bench, "_reset_peak", lambda: False)
    before = _touch(120)  # a larger peak before the block must not count
    del before
    with PeakRss(interval_s=0.001) as rss:
        block = _touch(60)
        if not kernel_peak:
            time.sleep(0.05)  # let the sampler see it
        del block
    assert 55 * MB <= rss.peak_bytes <= 90 * MB
    with PeakRss() as quiet:
        pass
    assert quiet.peak_bytes < 20 * MB
