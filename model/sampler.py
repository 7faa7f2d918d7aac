"""Hard-negative batches: clips that differ from a batch-mate in exactly one style attribute.

With random batches most negatives differ from a clip in several attributes, so the model can tell
them apart by whichever cue is easiest — often the voice. A batch built of small groups, each an
*anchor* plus partners that share every stated attribute with it but one (same gender, pitch and
speed, different energy; ...), makes every attribute carry its own contrast within the batch.

``OneAttributeSampler`` is a drop-in for ``model.data.EpochSampler`` (same ``set_epoch``/``skip``/DDP
behaviour): it yields indices group after group, so the loader's consecutive batches hold whole groups
except where a group straddles a batch boundary. Clips whose attributes are unknown, or that have no
partner left, become groups of one: the sampler degrades to random batches on manifests without
attribute columns. Every clip appears once per epoch; the order is a pure function of (seed, epoch).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

from fsclap.errors import FsclapError

ATTRIBUTES = ("gender", "pitch", "speed", "energy", "emotion")
UNKNOWN = ("", "unknown", None)


def differing_attributes(
    a: Mapping[str, str], b: Mapping[str, str], names: Sequence[str] = ATTRIBUTES
) -> list[str]:
    """Attributes whose levels differ between two clips (an unknown level differs from a known one)."""
    return [k for k in names if _level(a, k) != _level(b, k)]


def _level(attrs: Mapping[str, str], name: str) -> str:
    value = attrs.get(name)
    return "unknown" if value in UNKNOWN else str(value)


class OneAttributeSampler(Sampler[int]):
    """Groups of ``group_size`` (an anchor + partners each differing from it in exactly one known attribute,
    a different attribute per partner where possible), in random order per (seed, epoch)."""

    def __init__(
        self,
        attributes: Sequence[Mapping[str, str]],
        seed: int,
        group_size: int = 4,
        rank: int = 0,
        world: int = 1,
        names: Sequence[str] = ATTRIBUTES,
    ):
        if group_size < 1:
            raise FsclapError(f"hard-negative group size must be at least 1, got {group_size}")
        self.keys = [tuple(_level(a, k) for k in names) for a in attributes]
        self.names = tuple(names)
        self.n, self.seed, self.group_size, self.rank, self.world = (
            len(self.keys),
            seed,
            group_size,
            rank,
            world,
        )
        self.epoch = 0
        self.skip = 0
        self.levels = [
            sorted({key[i] for key in self.keys} - {"unknown"}) for i in range(len(self.names))
        ]

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def groups(self) -> list[list[int]]:
        """This epoch's groups, first item the anchor; deterministic by (seed, epoch)."""
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        by_key: dict[tuple, list[int]] = {}
        for i in rng.permutation(self.n).tolist():
            by_key.setdefault(self.keys[i], []).append(i)
        used = np.zeros(self.n, dtype=bool)
        out = []
        for anchor in rng.permutation(self.n).tolist():
            if used[anchor]:
                continue
            used[anchor] = True
            group = [anchor]
            key = self.keys[anchor]
            for attr in rng.permutation(len(self.names)).tolist():
                if len(group) >= self.group_size:
                    break
                if key[attr] == "unknown":
                    continue  # a caption never states an unknown level: no contrast to teach
                for level in rng.permutation(self.levels[attr]).tolist():
                    if level == key[attr]:
                        continue
                    partner = _pop_unused(
                        by_key.get(key[:attr] + (level,) + key[attr + 1 :], []), used
                    )
                    if partner is not None:
                        used[partner] = True
                        group.append(partner)
                        break
            out.append(group)
        return out

    def order(self) -> list[int]:
        groups = self.groups()
        if self.world > 1:  # whole groups per rank, cut to the same count of clips on each
            shards = [[i for g in groups[r :: self.world] for i in g] for r in range(self.world)]
            return shards[self.rank][: min(len(s) for s in shards)]
        return [i for g in groups for i in g]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.order()) - self.skip)


def _pop_unused(candidates: list[int], used: np.ndarray) -> int | None:
    while candidates:
        i = candidates.pop()
        if not used[i]:
            return i
    return None
