"""`set_training_mode(True)` before torch.compile: compiled graphs are split for training.

Backward always works through AOTAutograd; the mode chooses how the joint forward/backward graph is
split. On, AOTAutograd's min-cut partitioner recomputes cheap elementwise values in the backward graph
instead of saving them (less activation memory, fewer stored intermediates, as training wants); off,
the default partition saves every intermediate the backward reads."""
from __future__ import annotations

_TRAINING = False


def set_training_mode(enabled: bool = True) -> None:
    global _TRAINING
    if not isinstance(enabled, bool):
        raise TypeError(f"set_training_mode: expected a bool, got {type(enabled).__name__}")
    _TRAINING = enabled


def training_mode() -> bool:
    return _TRAINING
