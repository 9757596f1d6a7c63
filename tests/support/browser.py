"""Screenshots of Label Studio's labeling screen in headless Chromium (no display needed).

The browser is driven by Playwright (Python) from ``.venv-ls`` (installed by
``scripts/setup_label_studio.sh``, so finepose's own .venv needs nothing) and runs Debian's
``/usr/bin/chromium`` (``executable_path``; no Playwright browser download). From tests::

    from tests.support.browser import browser_available, screenshot_task

    info = screenshot_task(ls, project_id, task_id, tmp_path / "labeling.png")
    # info: {"png", "width", "height", "seconds", "url", "regions", "image_size"}

This module is also the script that the subprocess runs (``python tests/support/browser.py JSON``);
that half uses only the standard library and playwright.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LS_VENV = Path(os.environ.get("FINEPOSE_LS_VENV", REPO / ".venv-ls"))
LS_PYTHON = LS_VENV / "bin" / "python"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("FINEPOSE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):  # fmt: skip
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def browser_available() -> str | None:
    """None when screenshots can be taken, else the reason why not (for pytest.skip)."""
    if not LS_PYTHON.exists():
        return f"{LS_VENV} is missing (run: bash scripts/setup_label_studio.sh)"
    if chromium_path() is None:
        return "Chromium is not installed (run: bash scripts/setup_label_studio.sh, or apt-get install chromium)"
    r = subprocess.run([str(LS_PYTHON), "-c", "import playwright"], capture_output=True)
    if r.returncode:
        return f"playwright is not installed in {LS_VENV} (run: bash scripts/setup_label_studio.sh)"
    return None


def screenshot_task(
    ls,
    project_id: int,
    task_id: int,
    out_png: Path | str,
    *,
    annotation_id: int | None = None,
    email: str | None = None,
    password: str | None = None,
    min_regions: int = 1,
    viewport: tuple[int, int] = (1280, 800),
    timeout: float = 120,
) -> dict:
    """Log in (form), open the labeling screen of ``task_id``, wait for image + regions, save a PNG.

    ``ls`` is the ``LabelStudioServer`` of tests/support/label_studio.py (``url``, ``username``,
    ``password``). The labeling screen is ``/projects/{project}/data?task={task}`` (Data
    Manager with the task open; ``annotation_id`` selects an annotation or prediction tab).
    Waits until the task's image has loaded (``naturalWidth > 0``) and at least
    ``min_regions`` regions are listed in the outliner, then until the network is idle.
    Raises RuntimeError with the browser's log on failure.
    """
    reason = browser_available()
    if reason:
        raise RuntimeError(reason)
    out_png = Path(out_png).resolve()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    url = f"{ls.url}/projects/{project_id}/data?task={task_id}"
    if annotation_id is not None:
        url += f"&annotation={annotation_id}"
    job = {
        "base_url": ls.url, "url": url, "email": email or ls.username, "password": password or ls.password,
        "out": str(out_png), "min_regions": min_regions, "viewport": list(viewport),
        "timeout_ms": int(timeout * 1000), "chromium": chromium_path(),
    }  # fmt: skip
    t0 = time.monotonic()
    r = subprocess.run(
        [str(LS_PYTHON), __file__, json.dumps(job)],
        capture_output=True, text=True, timeout=timeout + 60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if r.returncode or not out_png.exists():
        raise RuntimeError(f"screenshot of {url} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    info = json.loads(r.stdout.strip().splitlines()[-1])
    info["seconds"] = round(time.monotonic() - t0, 2)
    return info


def annotate_stream(ls, project_id: int, out_dir: Path | str, *, email: str | None = None,
                    password: str | None = None, viewport: tuple[int, int] = (1600, 1000),
                    timeout: float = 120) -> dict:
    """As an annotator: log in, open the project's labeling stream (Label All Tasks), wait for
    the first task's image and the prediction's regions, save ``stream.png``, read the side
    panel's fields (the project's instructions, where Label Studio shows them first, read and
    closed), click Submit and record every warning Label Studio shows; then open the
    Data Manager and save ``data_manager.png``. Returns what was seen (``fields``: name ->
    [value, disabled, bottom px, text fits], ``warnings``, ``submit_seconds``, ...)."""
    return _subprocess({
        "mode": "stream", "base_url": ls.url, "project": project_id, "email": email or ls.username,
        "password": password or ls.password, "out_dir": str(Path(out_dir).resolve()), "viewport": list(viewport),
        "timeout_ms": int(timeout * 1000), "chromium": chromium_path(),
    }, timeout)  # fmt: skip


def task_view(ls, project_id: int, out_dir: Path | str, *, alternatives_task: int | None = None,
              keypoints_task: int | None = None, clicks=(), box_task: int | None = None, box=(), box_label: str = "",
              email: str | None = None, password: str | None = None, viewport: tuple[int, int] = (1600, 1000),
              timeout: float = 180) -> dict:
    """As an annotator in the Data Manager's task view (a task opened from the table):

    - ``alternatives_task``: read the predictions listed above the photo (name, score), the
      azimuth the opened annotation shows, click the other finepose prediction and read the
      azimuth again (``alternatives``; ``alternatives.png``, ``alternative_clicked.png``);
    - ``keypoints_task``: switch on Auto-Annotation, pick the smart keypoint tool
      (Auto-Detect -> key point), then per ``(label text, x px, y px[, x aside, y aside])``
      of ``clicks`` select the label and click the photo there (a retry clicks the aside
      point when given), waiting for the interactive call's answer
      (``keypoints``: per click the seconds, HTTP status and finepose's message; the last
      answer's results; the fields afterwards; ``keypoints.png``);
    - ``box_task``: switch on Auto-Annotation, pick the smart rectangle tool (Auto-Detect ->
      rectangle) and the label ``box_label``, and drag a rectangle over the photo from
      ``box[:2]`` to ``box[2:]`` (photo px), waiting for the interactive call's answer
      (``box``: seconds, HTTP status, the answer's results, finepose's message as shown;
      ``box.png``).
    """
    return _subprocess({
        "mode": "task_view", "base_url": ls.url, "project": project_id, "email": email or ls.username,
        "password": password or ls.password, "out_dir": str(Path(out_dir).resolve()), "viewport": list(viewport),
        "timeout_ms": int(timeout * 1000), "chromium": chromium_path(), "alternatives_task": alternatives_task,
        "keypoints_task": keypoints_task, "clicks": [list(c) for c in clicks],
        "box_task": box_task, "box": list(box), "box_label": box_label,
    }, timeout)  # fmt: skip


def walk_steps(ls, project_id: int, out_dir: Path | str, steps: list[dict], *, email: str | None = None,
               password: str | None = None, viewport: tuple[int, int] = (1600, 1000), timeout: float = 240) -> dict:
    """As an annotator, in one logged-in browser session, the ``steps`` in order; each is a
    dict with ``do`` and returns what was seen (in ``steps``, in order):

    - ``{"do": "open", "task": id}``: the task view (Data Manager -> the task); waits for the
      photo and, when the task gets one, the prediction's fields; ``fields``, ``screen``
      (the labeling screen's text) and ``open_<id>.png``;
    - ``{"do": "submit", "task": id, "type": {name: value}}``: open the task, type the values
      into the Number fields, click Submit; ``posted`` (whether an annotation was saved, and
      its id), Label Studio's ``warnings``, ``submit_<id>.png``;
    - ``{"do": "data_manager"}``: the Data Manager's text and ``data_manager.png``.
    """
    return _subprocess({
        "mode": "steps", "base_url": ls.url, "project": project_id, "email": email or ls.username,
        "password": password or ls.password, "out_dir": str(Path(out_dir).resolve()), "viewport": list(viewport),
        "timeout_ms": int(timeout * 1000), "chromium": chromium_path(), "steps": steps,
    }, timeout)  # fmt: skip


def rate_study(ls, project_id: int, out_dir: Path | str, choices: dict[int, str], *, email: str, password: str,
               probes=(), viewport: tuple[int, int] = (1400, 900), timeout: float = 240) -> dict:
    """As a study rater: log in, open the project's labeling stream and, per task it serves,
    wait for the picture, click the choice ``choices[task id]`` and Submit, until the stream
    runs out. Then GET each of ``probes`` (paths on Label Studio) with the rater's session.

    Returns ``rated`` (task, choice, saved annotation id), ``texts`` (each labeling screen's
    text), ``images`` (every picture's ``src`` shown: Label Studio shows blobs), ``media``
    (the URL of every image the browser downloaded, Label Studio's own icons aside),
    ``responses`` (every JSON or HTML response the browser received: url, status, body) and ``probes`` (path, status, body); screenshots
    ``rate_<n>.png``."""
    return _subprocess({
        "mode": "rate", "base_url": ls.url, "project": project_id, "email": email, "password": password,
        "out_dir": str(Path(out_dir).resolve()), "viewport": list(viewport), "timeout_ms": int(timeout * 1000),
        "chromium": chromium_path(), "choices": {str(k): v for k, v in choices.items()}, "probes": list(probes),
    }, timeout)  # fmt: skip


def _subprocess(job: dict, timeout: float) -> dict:
    reason = browser_available()
    if reason:
        raise RuntimeError(reason)
    Path(job["out_dir"]).mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    r = subprocess.run(
        [str(LS_PYTHON), __file__, json.dumps(job)],
        capture_output=True, text=True, timeout=timeout + 120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if r.returncode:
        raise RuntimeError(f"browser job {job['mode']} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    info = json.loads(r.stdout.strip().splitlines()[-1])
    info["seconds"] = round(time.monotonic() - t0, 2)
    return info


# --------------------------------------------------------------------------------------------
# the subprocess half (runs with .venv-ls/bin/python)

_FIELDS_JS = """() => Object.fromEntries(Array.from(document.querySelectorAll('.lsf-number input')).map(i =>
    [i.name, [i.value, i.disabled, Math.round(i.getBoundingClientRect().bottom), i.scrollWidth <= i.clientWidth]]))"""
_WARNINGS_JS = """() => Array.from(document.querySelectorAll('.ant-modal, .lsf-modal, [role=dialog], .ant-message, .lsf-toast'))
    .map(m => m.textContent.trim()).filter(t => t.length > 0)"""


def login_label_studio(page, base_url: str, email: str, password: str) -> None:
    """Log in through Label Studio's own form (email + password; the CSRF token rides in a
    hidden input); RuntimeError when the login page comes back."""
    page.goto(base_url + "/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit], input[type=submit]")
    if "/user/login" in page.url:
        raise RuntimeError(f"login as {email} failed (still on {page.url})")


def _login(page, job):
    login_label_studio(page, job["base_url"], job["email"], job["password"])


def _stream(page, job) -> dict:
    out = Path(job["out_dir"])
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _login(page, job)
    page.goto(f"{job['base_url']}/projects/{job['project']}/data?labeling=1")
    page.wait_for_selector(".lsf-outliner-item", timeout=job["timeout_ms"])
    page.wait_for_function("() => document.querySelectorAll('.lsf-number input').length > 0 && "
                           "Array.from(document.querySelectorAll('.lsf-number input')).some(i => i.value !== '')")
    page.wait_for_timeout(1500)  # Konva draws brush masks asynchronously
    shown = page.locator(".lsf-modal-ls_visible")
    instructions = ""
    if shown.count():  # the project's instructions, shown on opening: read, then closed
        page.screenshot(path=str(out / "instructions.png"))
        instructions = shown.first.inner_text()
        shown.first.locator("[class*=close], button").first.click()
        page.wait_for_function("() => !document.querySelector('.lsf-modal-ls_visible')")
    page.screenshot(path=str(out / "stream.png"))
    image = page.evaluate("""() => { const i = Array.from(document.querySelectorAll('img')).filter(i => i.naturalWidth > 0)
        .sort((a, b) => b.getBoundingClientRect().width - a.getBoundingClientRect().width)[0];
        const r = i.getBoundingClientRect(); return [r.x, r.y, r.width, r.height, i.naturalWidth, i.naturalHeight]; }""")
    fields = page.evaluate(_FIELDS_JS)
    task_before = page.evaluate("() => window.location.search")
    t0 = time.monotonic()
    with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST", timeout=job["timeout_ms"]) as saved:
        page.click("[aria-label='Submit current annotation']")
    submit_seconds = time.monotonic() - t0
    page.wait_for_timeout(1500)
    warnings = dialogs + page.evaluate(_WARNINGS_JS)
    page.screenshot(path=str(out / "after_submit.png"))
    annotation = saved.value.json()
    page.goto(f"{job['base_url']}/projects/{job['project']}/data")
    page.wait_for_selector("text=finepose_error", timeout=job["timeout_ms"])
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "data_manager.png"))
    table = page.evaluate("() => document.body.innerText")
    return {"fields": fields, "image_box": image, "warnings": warnings, "submit_seconds": round(submit_seconds, 3),
            "annotation_id": annotation.get("id"), "task_url_before": task_before, "data_manager_text": table,
            "instructions": instructions}



_IMAGE_BOX_JS = """() => { const i = Array.from(document.querySelectorAll('img')).filter(i => i.naturalWidth > 0)
    .sort((a, b) => b.getBoundingClientRect().width - a.getBoundingClientRect().width)[0];
    const r = i.getBoundingClientRect(); return [r.x, r.y, r.width, r.height, i.naturalWidth, i.naturalHeight]; }"""
_MESSAGE_JS = """() => Array.from(document.querySelectorAll('[class*=textarea], [class*=text-area]'))
    .map(e => e.innerText.trim()).filter(t => t && !t.includes('submissions') && !t.includes('characters'))[0] || ''"""


# What a click on the photo meets: the picked tool(s), the selected label(s), the regions
# listed, any modal, and Label Studio's own editor state (window.Htx).
_CLICK_STATE_JS = """() => ({
    tools: Array.from(document.querySelectorAll('[class*=tool_active], [class*=tool_selected]')).map(e => e.className),
    labels: Array.from(document.querySelectorAll('.lsf-label')).filter(e => /selected|active/.test(e.className))
        .map(e => e.innerText.trim()),
    regions: Array.from(document.querySelectorAll('.lsf-outliner-item')).map(e => e.innerText.replace(/\\s+/g, ' ').trim()),
    modal: Array.from(document.querySelectorAll('.ant-modal, [class*=modal]')).map(e => e.innerText.slice(0, 200)),
    store: (() => { try {  // Label Studio's own state (window.Htx: its editor's root store)
        const a = window.Htx.annotationStore.selected;
        const tool = Array.from(a.names.values()).map(t => t.getToolsManager?.().findSelectedTool()).find(t => t);
        return {awaitingSuggestions: window.Htx.awaitingSuggestions, suggestions: a.suggestions.size,
                isDrawing: a.isDrawing, readOnly: a.isReadOnly(), selection: a.regionStore.hasSelection,
                tool: tool?.fullName, mode: tool?.mode, canStartDrawing: tool?.canStartDrawing?.()};
    } catch (e) { return String(e); } })(),
})"""


def _open_task(page, job, task_id):
    page.goto(f"{job['base_url']}/projects/{job['project']}/data?task={task_id}")
    page.wait_for_selector(".lsf-outliner-item", timeout=job["timeout_ms"])
    page.wait_for_function("() => Array.from(document.querySelectorAll('.lsf-number input')).some(i => i.value !== '')")
    page.wait_for_timeout(1500)  # Konva draws brush masks asynchronously


def _carousel(page):
    return page.evaluate("""() => Array.from(document.querySelectorAll('.lsf-annotations-carousel .lsf-annotation-button'))
        .map((b, i) => ({index: i, text: b.innerText.replace(/\\s+/g, ' ').trim(), selected: b.className.includes('_selected')}))""")


def _task_view(page, job) -> dict:
    out = Path(job["out_dir"])
    _login(page, job)
    seen = {}
    if job.get("alternatives_task"):
        _open_task(page, job, job["alternatives_task"])
        fields = page.evaluate(_FIELDS_JS)
        buttons = _carousel(page)
        page.screenshot(path=str(out / "alternatives.png"))
        predictions = [b for b in buttons if "%" in b["text"]]  # predictions show their score
        opened, opened_message = fields["azimuth"][0], page.evaluate(_MESSAGE_JS)
        clicked = []  # one click on each listed prediction: the numbers and message it shows
        for b in predictions:
            page.locator(".lsf-annotations-carousel .lsf-annotation-button").nth(b["index"]).click()
            page.wait_for_timeout(1200)
            clicked.append({"button": b["text"], "azimuth": page.evaluate(_FIELDS_JS)["azimuth"][0],
                            "message": page.evaluate(_MESSAGE_JS)})
        page.screenshot(path=str(out / "alternative_clicked.png"))
        seen["alternatives"] = {"buttons": buttons, "opened_azimuth": opened, "opened_message": opened_message,
                                "clicked": clicked}
    if job.get("keypoints_task"):
        _open_task(page, job, job["keypoints_task"])
        page.get_by_text("Auto-Annotation", exact=True).click()  # the editor's bottom bar switch
        clicks, last = [], None
        for label, x, y, *aside in job["clicks"]:
            # A click on a brush region's outline pixels (the prediction's projection) is now
            # and then lost by Label Studio 1.23 on a slow machine: mousedown and mouseup reach
            # the brush image, no click follows, nothing is sent. After 30 s without an answer:
            # Escape, the smart keypoint tool and the label picked again, and the photo clicked
            # at the aside point (inside the outline), as an annotator would; three tries.
            for tries in range(1, 4):
                if tries > 1:
                    page.keyboard.press("Escape")
                if tries > 1 or not clicks:
                    page.locator(".lsf-tool_smart").first.hover()  # Auto-Detect: the smart tools
                    page.locator(".lsf-tool__extra button[aria-label=key-point-tool]").click()
                button = page.locator(".lsf-label", has_text=label).first
                # A label's click switches it on or off: a retry leaves one still on as it is.
                if tries == 1 or not re.search("selected|active", button.get_attribute("class") or ""):
                    button.click()
                x0, y0, bw, bh, nw, nh = page.evaluate(_IMAGE_BOX_JS)  # where the photo is now
                t0 = time.monotonic()
                cx, cy = aside if tries > 1 and aside else (x, y)
                try:
                    with page.expect_response(lambda r: "interactive-annotating" in r.url,
                                              timeout=min(job["timeout_ms"], 30_000)) as answer:
                        page.mouse.click(x0 + (cx + 0.5) / nw * bw, y0 + (cy + 0.5) / nh * bh)
                    response = answer.value
                    break
                except Exception as error:  # Playwright's TimeoutError
                    if "Timeout" not in type(error).__name__:
                        raise
                    state = None
                    try:  # what the page showed, kept; never in place of the error itself
                        page.screenshot(path=str(out / f"keypoint-{label}-no-request-{tries}.png"))
                        state = page.evaluate(_CLICK_STATE_JS)
                        (out / f"keypoint-{label}-no-request-{tries}.json").write_text(json.dumps(state, indent=1))
                    except Exception as unseen:  # noqa: BLE001
                        print(f"finepose: no state kept after the click without an answer: {unseen}")
                    if tries == 3:
                        raise RuntimeError(f"no answer to the click of {label!r} in {tries} tries; the page's "
                                           f"state: {json.dumps(state, separators=(',', ':'))}") from error
            seconds = time.monotonic() - t0
            body = response.json()
            last = body.get("data", {}).get("result", [])
            message = [r["value"]["text"][0] for r in last if r.get("type") == "textarea"]
            page.wait_for_timeout(600)
            clicks.append({"label": label, "seconds": round(seconds, 3), "tries": tries, "status": response.status,
                           "message": message[0] if message else "", "shown": page.evaluate(_MESSAGE_JS)})
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "keypoints.png"))
        seen["keypoints"] = {"clicks": clicks, "result": last, "fields": page.evaluate(_FIELDS_JS)}
    if job.get("box_task"):
        _open_task(page, job, job["box_task"])
        page.get_by_text("Auto-Annotation", exact=True).click()
        page.locator(".lsf-tool_smart").first.hover()
        page.locator(".lsf-tool__extra button[aria-label=rectangle-tool]").click()
        page.locator(".lsf-label", has_text=job["box_label"]).first.click()
        x0, y0, bw, bh, nw, nh = page.evaluate(_IMAGE_BOX_JS)
        (ax, ay, bx, by) = job["box"]
        page.mouse.move(x0 + ax / nw * bw, y0 + ay / nh * bh)
        page.mouse.down()
        t0 = time.monotonic()
        with page.expect_response(lambda r: "interactive-annotating" in r.url, timeout=job["timeout_ms"]) as answer:
            for k in range(1, 11):
                page.mouse.move(x0 + (ax + (bx - ax) * k / 10) / nw * bw, y0 + (ay + (by - ay) * k / 10) / nh * bh)
            page.mouse.up()
        response = answer.value
        seconds = time.monotonic() - t0
        result = response.json().get("data", {}).get("result", [])
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "box.png"))
        seen["box"] = {"seconds": round(seconds, 3), "status": response.status, "result": result,
                       "shown": page.evaluate(_MESSAGE_JS), "fields": page.evaluate(_FIELDS_JS)}
    return seen


_SCREEN_JS = "() => (document.querySelector('.lsf-main-content, .lsf-main-view, [class*=main-content]') || document.body).innerText"


def _open_any(page, job, task_id) -> None:
    """The task view of ``task_id``: the photo loaded, then the prediction's fields when the
    task gets a prediction (a failed task has none: a few seconds' wait instead)."""
    page.goto(f"{job['base_url']}/projects/{job['project']}/data?task={task_id}")
    page.wait_for_function("""() => Array.from(document.querySelectorAll('img'))
        .some(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 50)""", timeout=job["timeout_ms"])
    try:
        page.wait_for_function("() => Array.from(document.querySelectorAll('.lsf-number input')).some(i => i.value !== '')",
                               timeout=15000)
    except Exception:  # no prediction for this task (it failed): its reason is what we look for
        pass
    page.wait_for_timeout(1500)  # Konva draws brush masks asynchronously


def _steps(page, job) -> dict:
    out = Path(job["out_dir"])
    _login(page, job)
    seen = []
    for step in job["steps"]:
        if step["do"] == "open":
            _open_any(page, job, step["task"])
            page.screenshot(path=str(out / f"open_{step['task']}.png"))
            seen.append({"fields": page.evaluate(_FIELDS_JS), "screen": page.evaluate(_SCREEN_JS)})
        elif step["do"] == "submit":
            _open_any(page, job, step["task"])
            for name, value in step["type"].items():
                field = page.locator(f".lsf-number input[name={name}]")
                field.fill(str(value))
                field.press("Tab")
            posted = []

            def saving(response, posted=posted):
                if "/annotations" in response.url and response.request.method == "POST":
                    posted.append(response)

            page.on("response", saving)
            page.click("[aria-label='Submit current annotation']")
            page.wait_for_timeout(3000)
            page.remove_listener("response", saving)
            warnings = page.evaluate(_WARNINGS_JS)
            page.screenshot(path=str(out / f"submit_{step['task']}.png"))
            saved = [r.json().get("id") for r in posted if r.status in (200, 201)]
            seen.append({"posted": saved, "warnings": warnings, "fields": page.evaluate(_FIELDS_JS)})
            page.keyboard.press("Escape")  # close a warning before the next step
        elif step["do"] == "data_manager":
            page.goto(f"{job['base_url']}/projects/{job['project']}/data")
            page.wait_for_selector("text=finepose_error", timeout=job["timeout_ms"])
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "data_manager.png"))
            seen.append({"text": page.evaluate("() => document.body.innerText")})
    return {"steps": seen}


_NEXT = re.compile(r"/api/projects/\d+/next|/api/dm/actions\?id=next_task")  # the stream's next task
_PICTURES_JS = """() => Array.from(document.querySelectorAll('img'))
    .filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 50).map(i => i.src)"""


def _rate(page, job) -> dict:
    out = Path(job["out_dir"])
    received = []
    page.on("response", lambda r: received.append(r))
    _login(page, job)
    with page.expect_response(lambda r: _NEXT.search(r.url)) as first:
        page.goto(f"{job['base_url']}/projects/{job['project']}/data?labeling=1")
    task = first.value.json() if first.value.status == 200 else None
    rated, texts, images = [], [], []
    while task is not None and len(rated) <= len(job["choices"]):
        page.wait_for_function(f"() => ({_PICTURES_JS})().length >= 1")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / f"rate_{len(rated) + 1}.png"))
        instructions = page.locator(".lsf-modal-ls_visible")
        if instructions.count():  # the project's instructions, shown on opening: read, then closed
            texts.append(instructions.first.inner_text())
            instructions.first.locator("[class*=close], button").first.click()
            page.wait_for_function("() => !document.querySelector('.lsf-modal-ls_visible')")
        texts.append(page.evaluate(_SCREEN_JS))
        images += page.evaluate(_PICTURES_JS)
        choice = job["choices"][str(task["id"])]
        page.locator(".lsf-choice__checkbox", has=page.locator(f"input[name={choice}]")).click()
        with page.expect_response(lambda r: _NEXT.search(r.url)) as following:
            with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as saved:
                page.click("[aria-label='Submit current annotation']")
        rated.append({"task": task["id"], "choice": choice, "annotation": saved.value.json().get("id")})
        task = following.value.json() if following.value.status == 200 else None
    page.wait_for_timeout(1000)
    probes = []
    for path in job["probes"]:
        response = page.request.get(job["base_url"] + path)
        probes.append({"path": path, "status": response.status, "body": response.text()[:2000]})
    responses, media = [], []
    for response in received:
        kind = response.headers.get("content-type", "")
        if kind.startswith("image/") and not response.url.startswith(("blob:", "data:")) and "/static/" not in response.url:
            media.append(response.url)
        if "json" not in kind and "html" not in kind:
            continue
        try:
            body = response.text()[:200000]
        except Exception:  # a body the browser no longer holds (e.g. a redirect's)
            body = ""
        responses.append({"url": response.url, "status": response.status, "body": body})
    return {"rated": rated, "texts": texts, "images": images, "media": media, "responses": responses, "probes": probes}


def _run(job: dict) -> dict:
    from playwright.sync_api import sync_playwright

    if job.get("mode") in ("stream", "task_view", "steps", "rate"):
        work = {"stream": _stream, "task_view": _task_view, "steps": _steps, "rate": _rate}[job["mode"]]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=job["chromium"], headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars"])
            try:
                w, h = job["viewport"]
                page = browser.new_page(viewport={"width": w, "height": h}, device_scale_factor=1)
                page.set_default_timeout(job["timeout_ms"])
                return work(page, job)
            finally:
                browser.close()
    timeout = job["timeout_ms"]
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=job["chromium"], headless=True,
            # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars"],
        )  # fmt: skip
        try:
            w, h = job["viewport"]
            page = browser.new_page(viewport={"width": w, "height": h}, device_scale_factor=1)
            page.set_default_timeout(timeout)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text[:300]}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

            _login(page, job)  # Label Studio's login form: email + password, CSRF token in a hidden input

            page.goto(job["url"])
            # the task image: an <img> that has loaded (LS draws it and a Konva canvas over it)
            page.wait_for_function(
                """() => Array.from(document.querySelectorAll('.lsf-main-view img, .lsf-image img, img'))
                      .some(i => i.complete && i.naturalWidth > 0 && /local-files|\\/data\\/|^blob:|^http/.test(i.src)
                                 && i.getBoundingClientRect().width > 50)""",
                timeout=timeout,
            )
            if job["min_regions"] > 0:
                page.wait_for_function(
                    "n => document.querySelectorAll('.lsf-outliner-item').length >= n",
                    arg=job["min_regions"], timeout=timeout,
                )  # fmt: skip
            try:
                page.wait_for_load_state("networkidle", timeout=15000)
            except Exception:  # long-polling pages never go idle; the drawing is what matters
                pass
            page.wait_for_timeout(1000)  # Konva draws brush masks asynchronously
            info = page.evaluate(
                """() => {
                    const img = Array.from(document.querySelectorAll('.lsf-main-view img, img'))
                        .find(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 50);
                    return {regions: document.querySelectorAll('.lsf-outliner-item').length,
                            image_size: img ? [img.naturalWidth, img.naturalHeight] : null,
                            text: document.body.innerText};
                }"""
            )
            page.screenshot(path=job["out"], full_page=False)
            info.update(png=job["out"], width=w, height=h, url=page.url)
            return info
        except Exception as exc:
            raise RuntimeError(f"{exc}\nbrowser console:\n" + "\n".join(console[-30:])) from exc
        finally:
            browser.close()


if __name__ == "__main__":
    # sys.path[0] is tests/, where label_studio.py would shadow the label_studio package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    result = _run(json.loads(sys.argv[1]))
    print(json.dumps(result))
