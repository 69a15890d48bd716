"""Process settings that make agora's torch workloads reproducible bit for bit on one build."""

from __future__ import annotations

import torch


def ensure_deterministic() -> None:
    """Pin torch to one intra-op thread and deterministic kernels, for this whole process.

    Process-wide on purpose: a seller or validator process exists to run these models, and switching
    the settings per call is too slow (enabling deterministic algorithms costs ~30 ms; checking is ~0.3 µs).
    One thread is also the fast choice for models this small (several threads made steps 15-250× slower).
    Summation order inside kernels can depend on the thread count, so a fixed count is part of
    reproducibility, not just speed.
    """
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    if not torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(True)
