"""The HTML report in a real headless browser (Debian's chromium) at 1400 px: the page loads,
every image renders, and no element is wider than the viewport (wide tables scroll in their box).

`make setup` installs chromium when it is missing (as root with apt); CI (CI=true) requires it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from evalbench.aggregate.summarize import load_runs
from evalbench.report.report import build_report
from tests.unit.synth_runs import Unit, make_run, scores

pytestmark = pytest.mark.integration

# Runs in the page after load; its verdict is read back from the DOM that chromium dumps.
CHECK = """<script>
window.addEventListener("load", () => {
  const vw = document.documentElement.clientWidth;
  const imgs = [...document.images];
  // Content may extend past the viewport only inside a box that scrolls sideways.
  const inScroller = e => {
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === "auto" || o === "scroll") return true;
    }
    return false;
  };
  const wide = [...document.querySelectorAll("body *")].filter(
    e => e.getBoundingClientRect().right > vw + 1 && !inScroller(e));
  const out = {images: imgs.length, broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length,
               viewport: vw, scrollWidth: document.documentElement.scrollWidth,
               wide: wide.slice(0, 5).map(e => e.tagName + "." + e.className)};
  const pre = document.createElement("pre");
  pre.id = "evalbench-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI: `make setup` installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (make setup installs it as root)")
    return found


def _check(browser: str, page_html: str, page) -> dict:
    page.write_text(page_html.replace("</body>", CHECK + "</body>"))
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
                           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="evalbench-check">([^<]*)</pre>', proc.stdout)
    assert match, f"the page did not finish loading: {proc.stderr[-1500:]}"
    return json.loads(match.group(1))


def _wide_runs(tmp_path):
    # Many groups with long names and many metrics: a comparison table far wider than 1400 px.
    units = []
    for g in range(8):
        name = f"a-rather-long-checkpoint-group-name-number-{g}"
        for s in range(2):
            extra = {f"an_unusually_long_metric_name_number_{k}": 5.0 + 0.1 * (g + k + s) for k in range(14)}
            units.append(Unit(f"{name}-s{s}", scores(40, 50 + g, 20, 100 * g + s), group=name, train_seed=s,
                              metrics={"avg_length": 900.0 + 10 * g + s, "length_controlled_winrate": 50.0 + g,
                                       **extra}))
    return make_run(tmp_path / "results", "wide", units)


def test_report_renders_in_a_real_browser_at_1400px(tmp_path):
    browser = _browser()
    files = build_report(load_runs([_wide_runs(tmp_path)]), tmp_path / "report", iters=200)
    # The test has teeth: the same page without the scrolling box overflows the viewport.
    check = _check(browser, files.html.read_text(), tmp_path / "report" / "checked.html")
    assert check["images"] >= 2 and check["broken"] == 0, check
    assert check["scrollWidth"] <= check["viewport"] and not check["wide"], check
    unboxed = _check(browser, files.html.read_text().replace(".table-wrap{max-width:100%;overflow-x:auto;", ".table-wrap{"),
                     tmp_path / "unboxed.html")
    assert unboxed["scrollWidth"] > unboxed["viewport"] or unboxed["wide"], unboxed
