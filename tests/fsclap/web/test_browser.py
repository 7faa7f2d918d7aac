"""End to end: ``fsclap serve`` in a subprocess on an ephemeral loopback port, driven by Debian's headless
Chromium through Playwright: search, see results, play a clip, filter, "more like this", history."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from fsclap.testing.browser import CHROMIUM, headless_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.server,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make system-deps)"),
]


@pytest.fixture(scope="module")
def server(web_index, tmp_path_factory):
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FSCLAP_MODELS": str(tmp_path_factory.mktemp("models")),
    }
    env = {k: v for k, v in env.items() if not k.startswith("FSCLAP_") or k == "FSCLAP_MODELS"}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fsclap.cli",
                "serve",
                "--index",
                str(web_index.index_dir),
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    try:
        line = (
            proc.stdout.readline().decode()
        )  # "serving fsclap style search on http://127.0.0.1:PORT/"
        assert line.startswith("serving fsclap style search on http://127.0.0.1:"), (
            line + log.read_text()
        )
        url = line.split(" on ", 1)[1].strip()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    with headless_chromium("--autoplay-policy=no-user-gesture-required") as chromium:
        yield chromium


def test_search_listen_filter_and_more_like_this(server, browser, web_index, artifacts_dir):
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    errors, audio_statuses = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on(
        "response", lambda r: audio_statuses.append(r.status) if r.url.endswith("/audio") else None
    )
    page.goto(server)
    assert page.locator("select").count() == 8  # seven filters + result count
    assert page.evaluate("document.activeElement.id") == "q"

    page.get_by_label("Describe a speaking style").fill("a sad woman speaking slowly")
    page.keyboard.press("Enter")
    cards = page.locator("ol.clips > li")
    cards.first.wait_for()
    assert cards.count() == 12
    assert "q=a+sad+woman+speaking+slowly" in page.url  # the script kept the address in step
    page.wait_for_function("document.getElementById('live').textContent.includes('12 clips for')")
    assert page.locator("audio").first.get_attribute("preload") == "none"

    # play the first clip with its own play button
    first = page.locator("audio").first
    box = first.bounding_box()
    page.mouse.click(box["x"] + 22, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "(() => { const a = document.querySelector('audio');"
        " return !a.paused && a.currentTime > 0.3; })()",
        timeout=15000,
    )
    assert 206 in audio_statuses or 200 in audio_statuses
    page.wait_for_selector(".clip.playing")
    page.screenshot(path=str(artifacts_dir / "web_search.png"), full_page=True)

    # a filter re-runs the search; every card shows the chosen label
    page.get_by_label("Gender").select_option("male")
    page.wait_for_function("location.search.includes('gender=male')")
    page.wait_for_function("!document.getElementById('results').hasAttribute('aria-busy')")
    male = web_index.manifest["gender"].eq("male").sum()
    assert cards.count() == min(12, male)
    for chips in page.locator("ol.clips .chip-gender").all_inner_texts():
        assert chips.strip().endswith("male") and "female" not in chips

    # more like this, then back
    target = page.locator("ol.clips article").first.get_attribute("data-clip")
    page.locator("a.more-like").first.click()
    page.wait_for_function(
        "document.getElementById('summary').textContent.includes('sound like clip')"
    )
    assert f"like={target.replace('/', '%2F')}" in page.url or f"like={target}" in page.url
    assert page.locator("#clip-source").get_attribute("data-clip") == target
    page.screenshot(path=str(artifacts_dir / "web_more_like_this.png"), full_page=False)
    page.go_back()
    page.wait_for_function("document.getElementById('summary').textContent.includes('clips for')")
    assert page.locator("#q").input_value() == "a sad woman speaking slowly"

    # search by an example file: the upload goes through the script (no reload), with the gender filter still on
    row = web_index.manifest[web_index.manifest["gender"] == "male"].iloc[1]
    page.locator("summary", has_text="Search by an example clip").click()
    page.get_by_label("Audio file").set_input_files(row["audio_path"])
    page.get_by_role("button", name="Find similar clips").click()
    page.wait_for_function("document.getElementById('summary').textContent.includes('your file')")
    assert page.locator("ol.clips article").first.get_attribute("data-clip") == row["clip_id"]

    # "/" jumps back to the search box
    page.locator("h1").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    assert not errors, errors


def test_page_works_without_javascript(server, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(server)
    page.get_by_label("Describe a speaking style").fill("an angry man")
    page.get_by_label("Emotion").select_option(index=1)
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert "q=an+angry+man" in page.url and page.locator("ol.clips > li").count() >= 1
    context.close()
