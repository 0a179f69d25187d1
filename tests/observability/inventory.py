"""Which series balancer/metrics/export.py exposes, and which of them a PromQL expression uses.

The inventory comes from the code, not from a list kept here: ``Inventory.of(metrics)`` collects the
registry of a :class:`balancer.metrics.export.Metrics` that ``sample_cluster.populate`` filled, so every
family has samples and therefore known label names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from balancer.metrics.export import Metrics

#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
#: Series that Prometheus itself makes and the rules may use.
PROMETHEUS_SERIES = {"up": TARGET_LABELS}

_METRIC = r"(?:balancer|process|python)_[A-Za-z0-9_]+|up"  # ours, prometheus_client's process ones, up
_NAME = re.compile(rf"\b({_METRIC})\b(?!\s*\()")
_SELECTOR = re.compile(rf"\b({_METRIC})\s*\{{([^}}]*)\}}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class Family:
    """One metric family: its name, type, help and the label names its samples carry."""

    name: str
    type: str
    help: str
    labels: frozenset[str]

    @property
    def series_names(self) -> frozenset[str]:
        """The sample names a query can use (``_total`` for counters; buckets, sum, count for histograms)."""
        if self.type == "counter":
            return frozenset({f"{self.name}_total"})
        if self.type == "histogram":
            return frozenset({self.name, f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"})
        return frozenset({self.name})

    @property
    def exposed_name(self) -> str:
        """The name as written in PromQL and in the docs (counters with ``_total``)."""
        return f"{self.name}_total" if self.type == "counter" else self.name


@dataclass(frozen=True)
class Inventory:
    families: dict[str, Family]
    empty: frozenset[str] = field(default=frozenset())  # families with no samples (labels unknown)

    @classmethod
    def of(cls, metrics: Metrics) -> Inventory:
        families: dict[str, Family] = {}
        empty: set[str] = set()
        for fam in metrics.registry.collect():
            labels: set[str] = set()
            for sample in fam.samples:
                labels |= set(sample.labels) - {"le"}
            if not fam.samples:
                empty.add(fam.name)
            families[fam.name] = Family(fam.name, fam.type, fam.documentation, frozenset(labels))
        return cls(families, frozenset(empty))

    def series(self) -> dict[str, frozenset[str]]:
        """Every queryable series name -> the label names it may be matched on."""
        out: dict[str, frozenset[str]] = dict(PROMETHEUS_SERIES)
        for fam in self.families.values():
            for name in fam.series_names:
                extra = {"le"} if name.endswith("_bucket") else set()
                out[name] = fam.labels | TARGET_LABELS | extra
        return out

    def problems(self, expr: str) -> list[str]:
        """Unknown series names, and label names a selector or grouping uses that those series lack."""
        known = self.series()
        out: list[str] = []
        names = used_series(expr)
        for name in sorted(names - set(known)):
            out.append(f"{name} is not exported by balancer/metrics/export.py")
        for name, matchers in _SELECTOR.findall(expr):
            for label in _MATCHER.findall(matchers):
                if name in known and label not in known[name]:
                    out.append(f"{name} has no label {label!r} (it has {sorted(known[name])})")
        usable = set().union(*(known.get(n, frozenset()) for n in names)) | TARGET_LABELS
        for group in _GROUPING.findall(_STRING.sub('""', expr)):
            for label in (g.strip() for g in group.split(",")):
                if label and label not in usable:
                    out.append(f"grouping label {label!r} is on none of {sorted(names)}")
        return out


def used_series(expr: str) -> set[str]:
    """Series names (balancer_*, process_*, python_* and up) an expression selects; function names and
    strings are ignored."""
    return set(_NAME.findall(_STRING.sub('""', expr)))
