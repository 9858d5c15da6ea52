"""Fixtures of the scale tests: the tiny `padlens` export and a generated corpus."""
from __future__ import annotations

import pytest

WORDS = ("kettle train door flight pharmacy sunday noon morning water quickly cat mat the a of "
         "leaves closes opens boils sat behind you please my at six tomorrow").split()


def corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct texts of 2 to 14 words (so lengths, and pads, vary)."""
    import random

    rng = random.Random(seed)
    return [f"{i} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 14))) for i in range(n)]


@pytest.fixture(scope="session")
def tiny_export(zoo):
    return zoo("padlens")
