"""`lxp-sync report SOURCE` in a real headless browser: Debian's Chromium, installed where missing
(`tests/support/chromium.py`), loads the page offline without a console error, and its
screenshot shows the charts and the last run's numbers."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from PIL import Image

from lxp_sync.pipelines.report_html import FAILED, OK, PALETTE
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import lxp_sync
from tests.support.chromium import ensure_chromium, visit
from tests.test_cli import rest_env

CHARTS = ("rows", "duration", "requests")


def rgb(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


def painted(shot: Image.Image, box: dict[str, float], colors: set[tuple[int, int, int]]) -> int:
    """Pixels of `colors` inside `box` (CSS pixels, the screenshot's scale is 1)."""
    area = shot.crop(
        (int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"]))
    )
    return sum(
        count for count, color in area.getcolors(area.width * area.height) if color in colors
    )


def test_the_report_page_loads_offline_in_chromium_and_shows_charts_and_the_last_run(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    chromium, install_s = ensure_chromium()
    print(f"chromium: {chromium} (install: {install_s:.1f}s)")
    sandbox = fresh_sandbox
    env = rest_env(sandbox, workdir, SOURCES__PLUSPLUS_REST__MAX_RETRIES="1")
    args = ("run", "plusplus_rest", "--resources", "groups,articles")
    assert lxp_sync(*args, env=env, cwd=workdir).returncode == 0
    sandbox.fault(api="plusplus_rest", path_contains="articles", status=503, count=20)
    failed = lxp_sync(*args, env=env, cwd=workdir)
    assert failed.returncode == 1
    sandbox.clear_requests()
    sandbox.mutate(api="plusplus_rest", entity="groups", insert=4, update=3)
    last = lxp_sync(*args, "--report-json", str(workdir / "last.json"), env=env, cwd=workdir)
    assert last.returncode == 0, last.stderr
    report = json.loads((workdir / "last.json").read_text())
    page = workdir / "report.html"

    made = lxp_sync("report", "plusplus_rest", "--out", str(page), env=env, cwd=workdir)

    assert made.returncode == 0, made.stderr
    assert f"3 runs into duckdb -> {page}" in made.stdout
    html = page.read_text()
    # self-contained: nothing to fetch (the SVG namespace is a name, not a request)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|link|img|iframe)\b", html)

    seen = visit(chromium, page.as_uri(), [f"#chart-{name} svg" for name in CHARTS])

    assert seen.errors == []
    groups = next(r for r in report["resources"] if r["name"] == "groups")
    counts = groups["tables"][0]
    assert (counts["inserted"], counts["updated"]) == (4, 3)
    row = [counts[k] for k in ("written", "inserted", "updated", "unchanged", "deleted")]
    row += [groups[k] for k in ("pages", "requests", "retries", "rate_limited")]
    assert "\t".join(["groups", *(f"{v:,}" for v in row)]) in seen.text
    headline = next(line for line in last.stdout.splitlines() if " loaded into " in line)
    assert headline in seen.text
    reason = json.loads(
        (workdir / "dlt_data" / "pipelines" / ".lxp_sync_plusplus_rest.runs.jsonl")
        .read_text()
        .splitlines()[1]
    )["error"]
    assert "plusplus_rest.articles page 1" in reason and reason in seen.text
    shot = Image.open(io.BytesIO(seen.screenshot)).convert("RGB")
    (workdir / "report.png").write_bytes(seen.screenshot)
    bars = {rgb(c) for c in (*PALETTE, OK)}
    for name in CHARTS:
        (box,) = seen.boxes[f"#chart-{name} svg"]
        assert box["width"] >= 500 and box["height"] >= 200, name
        assert painted(shot, box, bars) > 400, f"the {name} chart shows no bars"
    (duration,) = seen.boxes["#chart-duration svg"]
    assert painted(shot, duration, {rgb(FAILED)}) > 10  # the failed run is marked


def test_the_browser_check_sees_a_console_error(tmp_path: Path) -> None:
    """The check above can fail: a page that logs an error, throws, and fetches from a CDN."""
    chromium, _ = ensure_chromium()
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><p>x</p><script>console.error('boom'); missing();</script>"
        '<img src="https://cdn.invalid/x.png"></body></html>'
    )
    seen = visit(chromium, page.as_uri(), [])
    assert "boom" in seen.errors
    assert any("missing is not defined" in e for e in seen.errors)
    assert any("ERR_NAME_NOT_RESOLVED" in e for e in seen.errors)
