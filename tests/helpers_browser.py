"""The interactive demo in headless Chromium (Debian's, driven by Playwright's Python package): starting
the demo as a process, and a page addressed in frame pixels.

Needs Chromium (``apt-get install chromium``; .ci/run installs it). Without it the tests are skipped,
unless IMSFR_REQUIRE_BROWSER=1 (CI) makes that a failure; IMSFR_CHROMIUM=path picks another build."""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("IMSFR_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 240_000


def chromium():
    if os.path.isfile(CHROMIUM) or shutil.which("chromium"):
        return CHROMIUM if os.path.isfile(CHROMIUM) else shutil.which("chromium")
    message = ("Chromium not found: apt-get install chromium (README, 'Interactive demo'); "
               "IMSFR_CHROMIUM=path to use another build")
    if os.environ.get("IMSFR_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    """interactive_demo.py running as a process, its output in ``log``; the system's temporary folder of
    the process is ``tmp`` (so a test can see what it leaves there)."""

    def __init__(self, folder, model, *args, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = os.path.join(folder, f"demo-{self.port}.log")
        self.tmp = os.path.join(folder, "system-tmp")
        os.makedirs(self.tmp, exist_ok=True)
        self.argv = [sys.executable, "interactive_demo.py", "--model", model, "--device", "cpu", "--port",
                     str(self.port), *args]
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(self.argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False",
                                                 "TMPDIR": self.tmp})
        self.wait_for_server()

    def output(self):
        return open(self.log).read()

    def wait_for_server(self, seconds=180):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the demo exited with code {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"the demo did not answer within {seconds} s:\n{self.output()}")

    def stop(self, signal_number=None, timeout=60):
        """Send ``signal_number`` (default SIGTERM) and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal_number or 15)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def browser():
    from playwright.sync_api import sync_playwright
    executable = chromium()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


class Page:
    """A page of the demo; positions are in pixels of the working-size frame."""

    def __init__(self, browser, demo, size):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.demo, (self.height, self.width) = demo, size
        self.open()

    def open(self):
        self.page.goto(self.demo.url)
        self.wait_ready()

    def reload(self):
        self.page.reload()
        self.wait_ready()

    def wait_ready(self):
        """The canvas shows the session the header names: its frame and state arrived."""
        self.page.wait_for_function("() => { const c = document.querySelector('#canvas [data-state]');"
                                    " const h = document.querySelector('#header');"
                                    " return c && h && c.dataset.state && !c.dataset.loading && c.dataset.session &&"
                                    " h.innerText.includes(c.dataset.session + ' ('); }", timeout=TIMEOUT_MS)

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)

    def state(self):
        return self.js("() => document.querySelector('#canvas [data-state]').dataset.state")

    def text(self, selector):
        return self.page.inner_text(selector)

    def wait_text(self, selector, text, timeout=TIMEOUT_MS):
        self.page.wait_for_function("([s, t]) => { const e = document.querySelector(s);"
                                    " return e && e.innerText.includes(t); }", arg=[selector, text], timeout=timeout)
        return self.text(selector)

    def saved(self, text, timeout=TIMEOUT_MS):
        """Wait for the canvas's line to say ``text``, and for no edit in flight; returns the line."""
        found = self.wait_text("#canvas .imsfr-status", text, timeout)
        self.page.wait_for_function("() => document.querySelector('#canvas [data-busy]') === null || "
                                    "document.querySelector('#canvas [data-busy]').dataset.busy === '0'",
                                    timeout=timeout)
        return found

    def goto(self, t):
        self.js("(t) => { const s = document.querySelector('#canvas .imsfr-slider'); s.value = t;"
                " s.dispatchEvent(new Event('input', {bubbles: true})); }", t)
        self.wait_text("#canvas .imsfr-frame", f"frame {t} /")
        self.page.wait_for_function("() => !document.querySelector('#canvas [data-state]').dataset.loading",
                                    timeout=TIMEOUT_MS)

    def tool(self, name):
        self.page.click(f"#canvas .imsfr-tool[data-tool={name}]")

    def point(self, x, y):
        view = self.page.locator("#canvas .imsfr-view")
        view.scroll_into_view_if_needed()  # a button below (new session, export) may have scrolled the page
        box = view.bounding_box()
        return box["x"] + (x + 0.5) * box["width"] / self.width, box["y"] + (y + 0.5) * box["height"] / self.height

    def drag(self, points):
        mouse = self.page.mouse
        mouse.move(*self.point(*points[0]))
        mouse.down()
        for point in points[1:]:
            mouse.move(*self.point(*point))
        mouse.up()

    def click(self, x, y, positive=True):
        self.page.mouse.click(*self.point(x, y), button="left" if positive else "right")

    def progress_done(self, direction="forward"):
        return self.wait_text("#progress", f"Propagated {direction}")

    def header(self):
        return self.text("#header")

    def session_id(self):
        return self.header().split("session ")[1].split(" ")[0].strip("`")


def manifest(folder):
    with open(os.path.join(folder, "session.json")) as f:
        return json.load(f)
