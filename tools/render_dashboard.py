#!/usr/bin/env python3
"""Render a static PNG preview of the Grafana dashboard's panels from a real Prometheus.

Every panel of deploy/grafana/balancer.json is drawn where the dashboard's grid puts it, with its title,
from ``query_range`` over the last N minutes of each of its queries: time series as lines, state
timelines as coloured bands (thresholds or value mappings), stats as their last value. Rows become
headings. Grafana variables are filled in: ``$host`` with ``--host`` (a regex, default all),
``$__rate_interval`` with ``--rate-interval``, ``$__interval`` with the step, ``$__range`` with the window.

    python tools/render_dashboard.py --prometheus http://127.0.0.1:9090 --minutes 30 --out docs/dashboard.png

Exit status: 0 when every query answered, 1 when some query failed (the panel says which), 2 when
Prometheus cannot be reached or the dashboard cannot be read.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.gridspec import GridSpec
from matplotlib.ticker import MaxNLocator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DASHBOARD = ROOT / "deploy" / "grafana" / "balancer.json"
# Grafana's named colours, so thresholds and mappings look as they do in Grafana.
COLORS = {
    "green": "#73BF69", "yellow": "#FADE2A", "orange": "#FF9830", "red": "#F2495C",
    "blue": "#5794F2", "purple": "#B877D9", "text": "#CCCCDC", "transparent": "#00000000",
}
GRID_UNIT_INCHES = (0.85, 0.42)  # one grid column wide, one grid row high


@dataclass
class Series:
    name: str
    times: list[datetime]
    values: list[float]


@dataclass
class PanelData:
    series: list[Series] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- querying
def substitute(expr: str, variables: dict[str, str]) -> str:
    """Fill in ``$name`` and ``${name}`` Grafana variables (longest names first, so $__range stays whole)."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def legend(fmt: str, labels: dict[str, str]) -> str:
    if not fmt:
        shown = {k: v for k, v in labels.items() if k != "__name__"}
        return labels.get("__name__", "") + "{" + ",".join(f'{k}="{v}"' for k, v in shown.items()) + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def fetch(client: httpx.Client, url: str, panel: dict[str, Any], window: tuple[float, float, float],
          variables: dict[str, str]) -> PanelData:
    start, end, step = window
    data = PanelData()
    for target in panel.get("targets", []):
        expr = substitute(target.get("expr", ""), variables)
        resp = client.post(f"{url}/api/v1/query_range",
                           data={"query": expr, "start": start, "end": end, "step": step})
        body = resp.json()
        if body.get("status") != "success":
            data.errors.append(f"{target.get('refId', '?')}: {body.get('error', resp.text[:200])}")
            continue
        for result in body["data"]["result"]:
            points = [(float(t), float(v)) for t, v in result["values"]]
            data.series.append(Series(
                name=legend(target.get("legendFormat", ""), result["metric"]),
                times=[datetime.fromtimestamp(t, UTC) for t, _ in points],
                values=[v for _, v in points],
            ))
    return data


# --------------------------------------------------------------------------- drawing
def fmt_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.0f}%"
    if unit in {"bytes", "binBps"}:
        for size, suffix in ((1024**4, "TiB"), (1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}" + ("/s" if unit == "binBps" else "")
        return f"{value:.0f} B" + ("/s" if unit == "binBps" else "")
    if unit == "s":
        if abs(value) >= 7200:
            return f"{value / 3600:.1f} h"
        return f"{value:.0f} s" if abs(value) >= 10 else f"{value:.2f} s"
    if unit == "reqps":
        return f"{value:.2f}/s"
    return f"{value:.3g}"


def color_of(value: float, defaults: dict[str, Any]) -> str:
    """The colour Grafana gives ``value``: a value mapping if one matches, else its threshold step."""
    for mapping in defaults.get("mappings", []):
        option = mapping.get("options", {}).get(str(int(value)) if value == int(value) else str(value))
        if mapping.get("type") == "value" and option and option.get("color"):
            return COLORS.get(option["color"], option["color"])
    color = "green"
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step.get("value") is None or value >= step["value"]:
            color = step["color"]
    return COLORS.get(color, color)


def mapped_text(value: float, defaults: dict[str, Any]) -> str | None:
    for mapping in defaults.get("mappings", []):
        option = mapping.get("options", {}).get(str(int(value)) if value == int(value) else str(value))
        if mapping.get("type") == "value" and option:
            return str(option.get("text"))
    return None


def draw_timeseries(ax: Any, panel: dict[str, Any], data: PanelData) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    for s in data.series:
        ax.plot(s.times, s.values, label=s.name, linewidth=1.2)
    style = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
    if style != "off":
        for step in defaults.get("thresholds", {}).get("steps", []):
            if step.get("value") is not None:
                ax.axhline(step["value"], color=COLORS.get(step["color"], step["color"]), linestyle="--",
                           linewidth=0.8)
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(lambda v, _pos: fmt_value(v, unit))
    if data.series:
        ax.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.3)


def draw_timeline(ax: Any, panel: dict[str, Any], data: PanelData) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    names = []
    for row, s in enumerate(data.series):
        names.append(s.name)
        # Runs of one colour become one bar (Grafana's mergeValues), drawn together per colour.
        colors = [None if math.isnan(v) else color_of(v, defaults) for v in s.values]
        x = [mdates.date2num(t) for t in s.times]
        runs: dict[str, list[tuple[float, float]]] = {}
        start = 0
        for i in range(1, len(x) + 1):
            if i == len(x) or colors[i] != colors[start]:
                color = colors[start]
                if color is not None:
                    end = x[i] if i < len(x) else x[i - 1]
                    runs.setdefault(color, []).append((x[start], max(end - x[start], 1e-5)))
                start = i
        for color, spans in runs.items():
            ax.broken_barh(spans, (row - 0.42, 0.84), facecolors=color, linewidth=0)
        if s.values:
            last = s.values[-1]
            text = mapped_text(last, defaults) or fmt_value(last, defaults.get("unit", "short"))
            ax.text(0.99, row, text, transform=ax.get_yaxis_transform(), ha="right", va="center", fontsize=7,
                    color="black")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_ylim(len(names) - 0.5, -0.5)


def draw_stat(ax: Any, panel: dict[str, Any], data: PanelData) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    mode = panel.get("options", {}).get("textMode", "auto")
    ax.set_axis_off()
    shown = [s for s in data.series if s.values][:4]
    for i, s in enumerate(shown):
        value = s.values[-1]
        text = fmt_value(value, defaults.get("unit", "short"))
        if mode == "name":
            text = s.name
        elif mode == "value_and_name" or len(shown) > 1:
            text = f"{s.name}: {text}"
        plain = panel.get("options", {}).get("colorMode") == "none"
        color = COLORS["text"] if plain else color_of(value, defaults)
        ax.text(0.5, 0.5 - (i - (len(shown) - 1) / 2) * 0.3, text, ha="center", va="center",
                fontsize=16 if len(shown) == 1 else 10, color=color, transform=ax.transAxes)


def render(dashboard: dict[str, Any], results: dict[int, PanelData], window: tuple[float, float],
           out: Path) -> None:
    panels = dashboard.get("panels", [])
    bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1)
    plt.style.use("dark_background")
    fig = plt.figure(figsize=(24 * GRID_UNIT_INCHES[0], bottom * GRID_UNIT_INCHES[1] + 1), dpi=72)
    title = dashboard.get("title", "dashboard")
    fig.suptitle(f"{title}  ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", fontsize=14)
    grid = GridSpec(bottom, 24, figure=fig, hspace=1.6, wspace=0.9,
                    left=0.05, right=0.97, top=0.97, bottom=0.02)
    for panel in panels:
        pos = panel["gridPos"]
        ax = fig.add_subplot(grid[pos["y"]:pos["y"] + pos["h"], pos["x"]:pos["x"] + pos["w"]])
        if panel.get("type") == "row":
            ax.set_axis_off()
            ax.text(0, 0.5, panel.get("title", ""), fontsize=13, weight="bold", va="center",
                    transform=ax.transAxes)
            continue
        data = results.get(panel["id"], PanelData())
        ax.set_title(panel.get("title", ""), fontsize=9, loc="left")
        ax.tick_params(labelsize=6)
        if panel.get("type") == "stat":
            draw_stat(ax, panel, data)
        elif panel.get("type") == "state-timeline":
            draw_timeline(ax, panel, data)
        else:
            draw_timeseries(ax, panel, data)
        if panel.get("type") != "stat":
            ax.set_xlim(*(mdates.date2num(datetime.fromtimestamp(t, UTC)) for t in window))
            ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=5))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        if data.errors or not data.series:
            ax.text(0.5, 0.5, "\n".join(data.errors)[:300] or "no data", ha="center", va="center", fontsize=7,
                    color=COLORS["red" if data.errors else "text"], transform=ax.transAxes, wrap=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL")
    ap.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD, help="dashboard JSON")
    ap.add_argument("--minutes", type=float, default=30.0, help="window to render, ending now")
    ap.add_argument("--step", type=float, default=0.0, help="seconds between points (default: window/240)")
    ap.add_argument("--rate-interval", default="5m", help="what $__rate_interval becomes (default 5m)")
    ap.add_argument("--host", default=".*", help="what $host becomes: a regex of host names (default all)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png", help="PNG to write")
    args = ap.parse_args(argv)

    try:
        dashboard = json.loads(args.dashboard.read_text())
    except (OSError, ValueError) as exc:
        print(f"render_dashboard: cannot read {args.dashboard}: {exc}", file=sys.stderr)
        return 2
    end = time.time()
    start = end - args.minutes * 60
    step = args.step or max(1.0, args.minutes * 60 / 240)
    variables = {"host": args.host, "__rate_interval": args.rate_interval, "__interval": f"{step:g}s",
                 "__range": f"{args.minutes * 60:.0f}s"}
    url = args.prometheus.rstrip("/")
    results: dict[int, PanelData] = {}
    with httpx.Client(timeout=30.0) as client:
        try:
            client.get(f"{url}/-/ready").raise_for_status()
        except httpx.HTTPError as exc:
            print(f"render_dashboard: Prometheus at {url} is not ready: {exc}", file=sys.stderr)
            return 2
        for panel in dashboard.get("panels", []):
            if panel.get("type") != "row":
                results[panel["id"]] = fetch(client, url, panel, (start, end, step), variables)
    render(dashboard, results, (start, end), args.out)
    with_data = sum(1 for r in results.values() if r.series)
    errors = [f"{p['title']}: {e}" for p in dashboard["panels"]
              for e in results.get(p["id"], PanelData()).errors]
    print(f"rendered {len(results)} panels ({with_data} with data, {len(errors)} query errors) to {args.out}")
    for line in errors:
        print(f"  error: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
