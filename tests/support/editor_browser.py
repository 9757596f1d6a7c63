"""Drive the pose editor page in headless Chromium (WebGL on SwiftShader, its software
rasteriser) through Playwright, from tests.

Like tests/support/browser.py, the browser half runs with ``.venv-ls``'s Python (Playwright lives
there) as a subprocess; this module is also that script. A job is a URL and a list of steps,
run in order; each step's answer is returned in a list::

    run_page(url, [{"op": "eval", "js": "() => window.fineposeEditor.getPose()"},
                   {"op": "drag", "from": [400, 300], "to": [450, 300]},
                   {"op": "wheel", "at": [400, 300], "dy": 100, "modifiers": ["Alt"]},
                   {"op": "key", "key": "e"},
                   {"op": "screenshot", "path": "/tmp/editor.png"}])

The page is opened and ``window.fineposeEditor.ready`` awaited first (the answer of
``ready`` is the first item). ``eval`` steps run ``js`` as a function of ``arg``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

if __package__:  # imported from the tests
    from tests.support.browser import LS_PYTHON, browser_available, chromium_path, login_label_studio
else:  # the subprocess script: its sibling module, by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from browser import login_label_studio

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
    # WebGL on the CPU: ANGLE over SwiftShader (Chromium refuses software WebGL without the flag)
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
]  # fmt: skip


def run_page(url: str, steps: list[dict], viewport=(1280, 800), timeout: float = 240, via_label_studio=None) -> list:
    """Open ``url`` and run ``steps``; the answers in order (the first: ready).

    ``via_label_studio``: ``{"base_url", "email", "password"}``: log in to Label Studio, open
    the labeling screen at ``url`` and click the task's editor link instead (the editor opens
    in a new tab, which the steps then drive); the first answer also holds the link's href."""
    reason = browser_available()
    if reason:
        raise RuntimeError(reason)
    job = {"url": url, "steps": steps, "viewport": list(viewport), "chromium": chromium_path(),
           "timeout_ms": int(timeout * 1000), "ls": via_label_studio}
    t0 = time.monotonic()
    r = subprocess.run([str(LS_PYTHON), __file__], input=json.dumps(job), capture_output=True, text=True,
                       timeout=timeout + 60)  # fmt: skip
    if r.returncode:
        raise RuntimeError(f"editor page {url.split('?')[0]} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[:2500]}\n...\n{r.stderr[-1500:]}")
    answers = json.loads(r.stdout.strip().splitlines()[-1])
    answers.append({"seconds": time.monotonic() - t0})
    return answers


# --------------------------------------------------------------------------------------------
# the subprocess half (runs with .venv-ls/bin/python)


def _run(job: dict) -> list:
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    answers: list = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=job["chromium"], headless=True, args=CHROMIUM_ARGS)
        try:
            w, h = job["viewport"]
            page = browser.new_page(viewport={"width": w, "height": h}, device_scale_factor=1)
            page.set_default_timeout(job["timeout_ms"])
            page.on("console", lambda m: console.append(f"{m.type}: {m.text[:400]}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            if job.get("ls"):
                page = _open_from_label_studio(page, job, console)
                response = None
                answers.append({"status": 200, "href": page.url})
            else:
                response = page.goto(job["url"])
                answers.append({"status": response.status if response else None})
            if response is not None and response.status >= 400:
                answers[-1]["text"] = page.inner_text("body")[:500]
                return answers
            page.wait_for_function("() => Boolean(window.fineposeEditor && window.fineposeEditor.ready)")
            # false (and why) for a page whose task cannot open: its steps still run
            answers[-1].update(page.evaluate(
                "() => window.fineposeEditor.ready.then(() => ({ready: true}), (e) => ({ready: false, error: e.message}))"))
            for step in job["steps"]:
                answers.append(_step(page, step))
            answers.append({"console": console[-40:]})
            return answers
        except Exception as exc:
            raise RuntimeError(f"{exc}\nbrowser console:\n" + "\n".join(console[-40:])) from exc
        finally:
            browser.close()


def _open_from_label_studio(page, job: dict, console: list):
    """Log in (Label Studio's form), open the labeling screen, click the editor link: the
    editor's tab."""
    ls = job["ls"]
    login_label_studio(page, ls["base_url"], ls["email"], ls["password"])
    page.goto(job["url"])
    link = page.locator("a[href*='/editor/']").first  # re-found on each use: Label Studio re-renders
    link.wait_for()
    try:
        page.wait_for_load_state("networkidle", timeout=15000)
    except Exception:  # long-polling pages never go idle
        pass
    if ls.get("screenshot"):
        page.wait_for_timeout(1000)
        page.screenshot(path=ls["screenshot"])
    with page.expect_popup() as popup:
        link.click()
    editor = popup.value
    editor.set_default_timeout(job["timeout_ms"])
    editor.set_viewport_size({"width": job["viewport"][0], "height": job["viewport"][1]})
    editor.on("console", lambda m: console.append(f"editor {m.type}: {m.text[:400]}"))
    editor.on("pageerror", lambda e: console.append(f"editor pageerror: {e}"))
    editor.wait_for_load_state()
    return editor


def _editor_ready(page) -> str:
    """Wait for the editor of the page now open to be ready; its URL."""
    page.wait_for_function("() => window.fineposeEditor && window.fineposeEditor.ready")
    page.evaluate("() => window.fineposeEditor.ready")
    return page.url


# A drag's moves as a mouse reports them, ``hz`` times a second whether or not the page has
# drawn the last one: pointermove events (the pressed left button's, pointerId 1) sent to the
# element under the start by a timer on the page's main thread (late while a frame's work
# runs, then catching up). They skip Chromium's input pipeline and its coalescing of moves
# into one per frame; the page's handlers do what they do for a mouse. Playwright's own moves
# each wait for the page to take the last one.
PACED_MOVES = """async ([x0, y0, x1, y1, n, hz, shiftKey]) => {
  const target = document.elementFromPoint(x0, y0), t0 = performance.now();
  for (let k = 1; k <= n; k++) {
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + (k * 1000) / hz - performance.now())));
    target.dispatchEvent(new PointerEvent('pointermove', { bubbles: true, pointerId: 1, pointerType: 'mouse',
      isPrimary: true, buttons: 1, shiftKey, clientX: x0 + (x1 - x0) * k / n, clientY: y0 + (y1 - y0) * k / n }));
  }
}"""


def _step(page, step: dict):
    op = step["op"]
    mods = step.get("modifiers") or []
    if op == "eval":
        return page.evaluate(step["js"], step.get("arg"))
    if op == "wait":
        page.wait_for_timeout(step.get("ms", 100))
        return None
    if op == "trace_start":  # Chromium's trace (chrome://tracing JSON: the browser, GPU and page processes), until trace_stop
        page.context.browser.start_tracing(page=page, path=step["path"], categories=step.get("categories"))
        return None
    if op == "trace_stop":
        page.context.browser.stop_tracing()
        return None
    if op == "frame":  # let the page draw what changed (two animation frames)
        return page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
    for key in mods:
        page.keyboard.down(key)
    try:
        if op == "drag":
            (x0, y0), (x1, y1) = step["from"], step["to"]
            page.mouse.move(x0, y0)
            page.mouse.down(button=step.get("button", "left"))
            n = int(step.get("moves", 10))
            if step.get("pace_hz"):  # moves at a mouse's report rate, none waiting for the page
                if step.get("probe") or step.get("per_frame"):
                    raise ValueError("a paced drag cannot probe or wait for frames between its moves")
                page.evaluate(PACED_MOVES, [x0, y0, x1, y1, n, step["pace_hz"], "Shift" in mods])
                page.mouse.up(button=step.get("button", "left"))
                return {"move_seconds": [], "pace_hz": step["pace_hz"]}
            times, probes = [], []
            for k in range(1, n + 1):
                t0 = time.perf_counter()
                page.mouse.move(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n)
                if step.get("per_frame"):  # wait until the page has drawn this move
                    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
                times.append(time.perf_counter() - t0)
                if step.get("probe"):
                    probes.append(page.evaluate(step["probe"]))
            page.mouse.up(button=step.get("button", "left"))
            return {"move_seconds": times, "probes": probes}
        if op == "wheel":
            page.mouse.move(*step["at"])
            page.mouse.wheel(0, step["dy"])
            return None
        if op == "key":
            page.keyboard.press(step["key"])
            return None
        if op == "click":
            if "at" in step:
                page.mouse.click(*step["at"], button=step.get("button", "left"))
            else:
                page.click(step["selector"])
            return None
        if op == "fill":
            page.fill(step["selector"], step["text"])
            return None
        if op == "wait_text":  # until an element's text contains ``text``; answers the text
            page.wait_for_function("([s, t]) => (document.querySelector(s)?.textContent || '').includes(t)",
                                   arg=[step["selector"], step["text"]], timeout=step.get("timeout_ms", 60000))
            return page.inner_text(step["selector"])
        if op == "screenshot":
            page.screenshot(path=step["path"], full_page=False)
            return step["path"]
        if op == "wait_for":
            return page.wait_for_function(step["js"], arg=step.get("arg"), timeout=step.get("timeout_ms", 60000)).json_value()
        if op == "url":
            return page.url
        if op == "wait_url":  # a navigation (e.g. Save opening the next task), then its editor
            page.wait_for_url(f"**{step['contains']}**")
            return _editor_ready(page)
        if op == "click_and_wait_url":  # a click that navigates (a link, a reload), then its editor
            with page.expect_navigation(url=f"**{step['contains']}**"):
                page.click(step["selector"])
            return _editor_ready(page)
        raise ValueError(f"unknown step {op!r}")
    finally:
        for key in reversed(mods):
            page.keyboard.up(key)


if __name__ == "__main__":
    # sys.path[0] is tests/, where label_studio.py would shadow the label_studio package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    print(json.dumps(_run(json.loads(sys.stdin.read()))))
