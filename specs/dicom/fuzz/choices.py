"""Where the decisions of the fuzzing material come from.

Every generator and mutator of :mod:`dicomwire.specs.dicom.fuzz` takes a
:class:`Choices` and asks it for integers, picks, booleans, bytes and
orders; it never draws randomness itself.  Two sources implement it:
:class:`RandomChoices` (a seeded ``random.Random``: reproducible campaigns)
and :class:`DrawChoices` (a hypothesis ``draw``: the same code becomes a
hypothesis strategy, with shrinking).  Apart because both the generators
and the mutators depend on it, and it on nothing of theirs.
"""

from __future__ import annotations

import random
from typing import Any, Sequence


class Choices:
    """The decisions of a generator: the interface both sources implement."""

    def integer(self, lo: int, hi: int) -> int:            # lo <= n <= hi
        raise NotImplementedError

    def choice(self, seq: Sequence):
        raise NotImplementedError

    def boolean(self) -> bool:
        raise NotImplementedError

    def binary(self, n: int) -> bytes:
        raise NotImplementedError

    def shuffled(self, seq: Sequence) -> list:
        raise NotImplementedError


class RandomChoices(Choices):
    """Decisions from a seeded ``random.Random`` (campaigns, ``--seed``)."""

    def __init__(self, seed: Any = None):
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def integer(self, lo, hi):
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        return self.rng.choice(list(seq))

    def boolean(self):
        return self.rng.random() < 0.5

    def binary(self, n):
        return self.rng.randbytes(n)

    def shuffled(self, seq):
        out = list(seq)
        self.rng.shuffle(out)
        return out


class DrawChoices(Choices):
    """Decisions drawn from hypothesis strategies (``draw`` of an
    ``@st.composite``), so generated values shrink."""

    def __init__(self, draw):
        self.draw = draw
        self.st = hypothesis_strategies()

    def integer(self, lo, hi):
        return self.draw(self.st.integers(lo, hi))

    def choice(self, seq):
        return self.draw(self.st.sampled_from(list(seq)))

    def boolean(self):
        return self.draw(self.st.booleans())

    def binary(self, n):
        return self.draw(self.st.binary(min_size=n, max_size=n))

    def shuffled(self, seq):
        return list(self.draw(self.st.permutations(list(seq))))


def hypothesis_strategies():
    """``hypothesis.strategies``, imported when first asked for (hypothesis is
    optional: only :class:`DrawChoices` and the strategies need it)."""
    try:
        from hypothesis import strategies as st
    except ImportError:
        raise ImportError("the hypothesis strategies of dicomwire need hypothesis "
                          "(pip install hypothesis)") from None
    return st
