"""The notebooks' widgets in a real browser: JupyterLab on 127.0.0.1, driven by headless Chromium.

Notebooks 04 and 01 are opened in JupyterLab (copies, in a temporary folder), run top to
bottom with SR_SMOKE=1 (Run > Run All Cells), and then used as a person would: every
slider is moved by keyboard (arrow key on its handle) and by mouse (dragging the handle);
after each move the displayed picture must change (its pixels, from element screenshots,
not just the readout). The widgets must render as controls (sliders, Play, file picker),
never as their text repr or "Error displaying widget", and no cell may fail. Notebook 04's
file picker is given a photo, as a person picking a file would. Screenshots go to
outputs/browser/.

Needs Chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`;
`SR_BROWSER=1 bash scripts/setup.sh` does it), jupyterlab and selenium (the dev extra).
Skips, saying which is missing, where they are not there (fails instead under SR_BROWSER=1,
as in CI). The server and the browser are
stopped at the end whatever happens, and so is any kernel the server leaves behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "outputs" / "browser"
RUN_TIMEOUT = 300  # seconds for Run All on a busy 2-core CPU (about 10-30 s alone)


def _missing() -> str | None:
    for exe, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if not (shutil.which(exe) or (exe == "chromium" and shutil.which("chromium-browser"))):
            return f"no {exe} on PATH (apt-get install {package}, or SR_BROWSER=1 bash scripts/setup.sh)"
    for module in ("selenium", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            return f"no {module} in this environment (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def tools():
    reason = _missing()
    if reason and os.environ.get("SR_BROWSER") == "1":  # CI asked for them: they must run
        pytest.fail(f"SR_BROWSER=1 but {reason}")
    if reason:
        print(f"browser tests skipped: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kernel_pids(runtime: Path) -> list[int]:
    """Processes whose command line names our runtime folder: the kernels this server started."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(runtime) in cmd and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def _api(lab, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{lab['base']}{path}", method=method,
                                 headers={"Authorization": f"token {lab['token']}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tools, tmp_path_factory):
    """JupyterLab on 127.0.0.1 (a random free port, a token) over copies of the notebooks."""
    tmp = tmp_path_factory.mktemp("lab")
    work = tmp / "work"
    (work / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / "data", work / "data")  # the setup cell finds the repository by data/
    for nb in ("01_degradation_synthesis", "04_diffusion_explorer"):
        shutil.copy(ROOT / "notebooks" / f"{nb}.ipynb", work / "notebooks")
    settings = tmp / "settings"
    for rel, value in {
        # every cell in the page (no virtual scrolling), no news pop-up, never write the copies
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    }.items():
        path = settings / f"{rel}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    runtime = tmp / "runtime"
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "JUPYTER_PATH")}
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(runtime), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), IPYTHONDIR=str(tmp / "ipython"),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               SR_SMOKE="1", OMP_NUM_THREADS="1")
    log = open(tmp / "server.log", "w")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={work}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--ServerApp.allow_root=True")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    info = {"base": f"http://127.0.0.1:{port}", "token": token, "work": work, "log": tmp / "server.log"}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _api(info, "/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + info["log"].read_text()[-3000:])
                time.sleep(0.3)
        yield info
    finally:
        try:
            for kernel in _api(info, "/api/kernels") or []:
                _api(info, f"/api/kernels/{kernel['id']}", "DELETE")
        except Exception:
            pass
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()
        for pid in _kernel_pids(runtime):  # a kernel the server did not shut down
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def browser(tools):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


# ------------------------------------------------------------------ helpers
def _wait(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def _pixels(element) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"), dtype=np.int16)


def _changed(before: np.ndarray, element) -> bool:
    """The element's pixels differ from `before` (a still picture screenshots identically),
    in more than a few pixels: a faint change such as noise 3 -> 3.5 grey levels counts."""
    after = _pixels(element)
    return after.shape != before.shape or int((after != before).any(axis=2).sum()) > 10


NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the notebook in the visible tab
PROMPTS_JS = f"return [...document.querySelectorAll('{NOTEBOOK} .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"
STDERR_JS = f"""return [...document.querySelectorAll('{NOTEBOOK} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
               .map(e => e.textContent)"""


PICK_FILE_JS = """
const click = HTMLInputElement.prototype.click;
HTMLInputElement.prototype.click = function () {
  if (this.type !== 'file') return click.call(this);
  HTMLInputElement.prototype.click = click;
  this.setAttribute('data-sr-test-upload', '1');
  document.body.appendChild(this);
};
"""


def _kernel_idle(driver) -> bool:
    return bool(driver.execute_script(
        "const e = document.querySelector('.jp-Notebook-ExecutionIndicator');"
        "return e && e.getAttribute('data-status') === 'idle';"))


def open_and_run_all(driver, lab, name: str) -> None:
    """Open a notebook, wait for its kernel, Run > Run All Cells, wait until every cell ran."""
    from selenium.webdriver.common.by import By

    code_cells = sum(c["cell_type"] == "code" for c in json.loads((lab["work"] / "notebooks" / f"{name}.ipynb").read_text())["cells"])
    driver.get(f"{lab['base']}/lab/tree/notebooks/{name}.ipynb?token={lab['token']}")
    _wait(lambda: len(driver.execute_script(PROMPTS_JS)) == code_cells, 120, f"{name}'s {code_cells} code cells")
    _wait(lambda: _kernel_idle(driver), 120, "the kernel to start")
    menu = next(e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text.strip() == "Run")
    menu.click()
    run_all = 'li[data-command="runmenu:run-all"], li[data-command="notebook:run-all-cells"]'
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, run_all), 10, "Run > Run All Cells")[0].click()
    stopped_since = [None]

    def finished():
        """Every cell ran; or the run stopped (idle, nothing queued) with some cells never run."""
        prompts = driver.execute_script(PROMPTS_JS)
        if all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            return prompts
        if any("*" in p for p in prompts) or not _kernel_idle(driver):
            stopped_since[0] = None
            return False
        stopped_since[0] = stopped_since[0] or time.monotonic()
        return prompts if time.monotonic() - stopped_since[0] > 5 else False

    prompts = _wait(finished, RUN_TIMEOUT, f"{name} to run", interval=0.5)
    _shot(driver, f"{name}-run-all")
    errors = [t for t in driver.execute_script(STDERR_JS) if "Traceback" in t or "Error" in t]
    assert not errors, f"{name}: a cell failed:\n" + "\n".join(t[-1500:] for t in errors)
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"{name}: cells that did not run: {prompts}"
    outputs = "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, f"{NOTEBOOK} .jp-OutputArea"))
    assert "Error displaying widget" not in outputs and "model not found" not in outputs


def widget_output(driver, marker: str):
    """The output area of the cell whose source contains `marker`."""
    from selenium.webdriver.common.by import By

    for cell in driver.find_elements(By.CSS_SELECTOR, f"{NOTEBOOK} .jp-CodeCell"):
        source = cell.find_element(By.CSS_SELECTOR, ".jp-InputArea-editor").text
        if marker in source:
            out = cell.find_element(By.CSS_SELECTOR, ".jp-OutputArea")
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", out)
            return out
    raise AssertionError(f"no cell with {marker!r}")


def assert_rendered_as_controls(out, *, sliders: int, images: int, plays: int = 0) -> None:
    from selenium.webdriver.common.by import By

    text = out.text
    assert "Error displaying widget" not in text and not re.search(r"\b(VBox|HBox|IntSlider|FloatSlider)\(", text), text
    found = {
        "sliders": len(out.find_elements(By.CSS_SELECTOR, ".widget-slider .noUi-handle")),
        "images": len(out.find_elements(By.CSS_SELECTOR, "img.widget-image, .widget-image img, img.jupyter-widgets")),
        "plays": len(out.find_elements(By.CSS_SELECTOR, ".widget-play button")) and 1,
    }
    assert found == {"sliders": sliders, "images": images, "plays": plays}, found


def slider(out, label: str):
    from selenium.webdriver.common.by import By

    for box in out.find_elements(By.CSS_SELECTOR, ".widget-slider"):
        if box.find_element(By.CSS_SELECTOR, ".widget-label").text.strip() == label:
            return box
    raise AssertionError(f"no slider labelled {label!r}")


def readout(box) -> str:
    from selenium.webdriver.common.by import By

    return box.find_element(By.CSS_SELECTOR, ".widget-readout").text.strip()


def move_by_keyboard(driver, box, key) -> None:
    from selenium.webdriver.common.by import By

    handle = box.find_element(By.CSS_SELECTOR, ".noUi-handle")
    driver.execute_script("arguments[0].focus()", handle)
    handle.send_keys(key)


def move_by_mouse(driver, box, dx: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    handle = box.find_element(By.CSS_SELECTOR, ".noUi-handle")
    ActionChains(driver).click_and_hold(handle).pause(0.1).move_by_offset(dx // 2, 0).pause(0.1) \
        .move_by_offset(dx - dx // 2, 0).release().perform()


def expect_change(driver, box, picture, before_readout: str, before_pixels, what: str):
    _wait(lambda: readout(box) != before_readout, 15, f"{what}: the readout to change")
    _wait(lambda: _changed(before_pixels, picture), 15, f"{what}: the picture to change")
    return readout(box), _pixels(picture)


# -------------------------------------------------------------------- tests
def test_notebook_04_explorer_in_jupyterlab(lab, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    name = "04_diffusion_explorer"
    open_and_run_all(browser, lab, name)
    out = widget_output(browser, "viz.diffusion_explorer(")
    assert_rendered_as_controls(out, sliders=1, images=1, plays=1)
    step = slider(out, "step")
    picture = out.find_element(By.CSS_SELECTOR, "img")
    caption = next(e for e in out.find_elements(By.CSS_SELECTOR, ".widget-label") if e.text.startswith("step "))
    total = int(re.match(r"step 1/(\d+) ", caption.text).group(1))
    assert readout(step) == "1" and total > 1

    value, pixels = readout(step), _pixels(picture)
    move_by_keyboard(browser, step, Keys.ARROW_RIGHT)
    value, pixels = expect_change(browser, step, picture, value, pixels, "step, right arrow")
    assert value == "2" and caption.text.startswith(f"step 2/{total} ")  # the readout is the title's step
    _shot(browser, f"{name}-keyboard")

    move_by_mouse(browser, step, 400)  # drag to the end
    value, pixels = expect_change(browser, step, picture, value, pixels, "step, dragged")
    assert value == str(total) and caption.text.startswith(f"step {total}/{total} ")
    _shot(browser, f"{name}-mouse")

    out.find_elements(By.CSS_SELECTOR, ".widget-play button")[0].click()  # Play: from the start again
    expect_change(browser, step, picture, value, pixels, "Play")
    assert caption.text.startswith(f"step {readout(step)}/{total} ")

    # The "your photo" picker is a control too, and takes a file as a person picks one.
    upload = widget_output(browser, "viz.PhotoPicker(")
    assert upload.find_elements(By.CSS_SELECTOR, ".widget-upload"), upload.text
    from PIL import Image

    photo = tmp_path / "browser photo.png"
    Image.new("RGB", (80, 60), (10, 160, 90)).save(photo)
    # The button opens the browser's file chooser on a detached <input type=file>; headless,
    # that input is put in the page instead, and given the file as the chooser would.
    browser.execute_script(PICK_FILE_JS)
    upload.find_element(By.CSS_SELECTOR, ".widget-upload").click()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "input[data-sr-test-upload]"), 10, "the file input")[0] \
        .send_keys(str(photo))
    _wait(lambda: "uploaded: browser photo.png (80x60)" in upload.text, 20, "the upload to reach the kernel")
    assert (lab["work"] / "outputs" / "uploads" / "browser photo.png").exists()
    _shot(browser, f"{name}-upload")


def test_notebook_01_degradation_panel_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    name = "01_degradation_synthesis"
    open_and_run_all(browser, lab, name)
    out = widget_output(browser, "viz.degradation_panel(")
    assert_rendered_as_controls(out, sliders=4, images=2)
    picture = out.find_elements(By.CSS_SELECTOR, "img")[1]  # original | degraded
    for label, drag in (("blur sigma", 30), ("noise (/255)", 40), ("JPEG quality", -60), ("shrink by", 40)):
        box = slider(out, label)
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        value, pixels = readout(box), _pixels(picture)
        key = Keys.ARROW_LEFT if label == "JPEG quality" else Keys.ARROW_RIGHT  # JPEG starts near its max
        move_by_keyboard(browser, box, key)
        value, pixels = expect_change(browser, box, picture, value, pixels, f"{label}, arrow key")
        move_by_mouse(browser, box, drag)
        expect_change(browser, box, picture, value, pixels, f"{label}, dragged")
    _shot(browser, f"{name}-sliders")
