"""tools/render_dashboard.py draws the dashboard from a real Prometheus into a PNG."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.observability.conftest import ROOT, ScrapedCluster
from tests.observability.test_dashboard import PANELS

TOOL = ROOT / "tools" / "render_dashboard.py"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.mark.slow
def test_renders_every_panel_with_data(scraped_cluster: ScrapedCluster, tmp_path: Path) -> None:
    out = tmp_path / "dashboard.png"
    res = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "--prometheus",
            scraped_cluster.prometheus.url,
            "--minutes",
            "1",
            "--rate-interval",
            "10s",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"rendered {len(PANELS)} panels ({len(PANELS)} with data, 0 query errors)" in res.stdout
    width, height = png_size(out)
    assert width >= 1200 and height >= 2000
    assert out.stat().st_size > 100_000  # lines, bands and text, not an empty canvas


def test_exits_2_when_prometheus_is_unreachable(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(TOOL), "--prometheus", "http://127.0.0.1:9", "--out", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2 and "not ready" in res.stderr
    assert not (tmp_path / "x.png").exists()
