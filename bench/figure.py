"""One row of the benchmark table: the samples of the library and of its baseline, and the target.

A :class:`Figure` holds the raw samples of one measured job (seconds, bytes, or a rate)
for the library and for the plain-socket baseline, and judges them: the median, p10 and
p90 of each side, the ratio library/baseline of the medians, and PASS or MISS against the
target. ``as_dict`` is what ``run.py --json`` writes for each figure; ``run.py --render``
rebuilds a Figure from it. Nothing here measures: the figures are taken in ``run.py`` and
``pytestoverhead.py``.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Figure"]


@dataclass
class Figure:
    """One row of the table: samples for the library and the baseline, and the target.

    *kind* is 'time' (seconds, lower is better), 'bytes' (a size, lower is better), or
    the unit of a rate such as 'MiB/s' (higher is better). A ratio is shown only where it
    means something (*show_ratio*). *target* is checked against the ratio
    (``ratio_max``/``ratio_min``) or against the library's median (``absolute_max``).
    """

    key: str
    title: str
    kind: str
    target: str
    lib: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    ratio_max: float | None = None
    ratio_min: float | None = None
    absolute_max: float | None = None
    reference: bool = False
    show_ratio: bool = True
    note: str = ""

    def stats(self, samples: list[float]) -> dict[str, float] | None:
        if not samples:
            return None
        if len(samples) == 1:
            return {"median": samples[0], "p10": samples[0], "p90": samples[0]}
        cuts = statistics.quantiles(samples, n=10, method="inclusive")
        return {"median": statistics.median(samples), "p10": cuts[0], "p90": cuts[-1]}

    def ratio(self) -> float | None:
        lib, base = self.stats(self.lib), self.stats(self.base)
        if lib is None or base is None or base["median"] == 0:
            return None
        return lib["median"] / base["median"]

    def verdict(self) -> str:
        lib = self.stats(self.lib)
        if lib is None:
            return "n/a"
        if self.reference:
            return "-"
        if self.absolute_max is not None:
            return "PASS" if lib["median"] <= self.absolute_max else "MISS"
        ratio = self.ratio()
        if ratio is None:
            return "n/a"
        if self.ratio_max is not None and ratio > self.ratio_max:
            return "MISS"
        if self.ratio_min is not None and ratio < self.ratio_min:
            return "MISS"
        return "PASS"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            lib_stats=self.stats(self.lib), base_stats=self.stats(self.base),
            ratio=self.ratio(), verdict=self.verdict(),
        )
        return out
