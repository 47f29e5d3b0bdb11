"""`asr serve`'s page in a real browser: Debian's chromium, headless, driven by selenium through
chromium-driver, against a server process. It uploads a recording, records its (fake) microphone,
and shows what a bad file gets, as a user would see each.

Needs the Debian packages chromium and chromium-driver (`make test` installs them); skipped
without them, except under CI, where their absence fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.serving.conftest import FILES, Server, served

BROWSER, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (BROWSER and DRIVER):
    reason = "needs Debian's chromium and chromium-driver (scripts/install_system_packages.sh installs them)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)

MICROPHONE = FILES[1]
"""The recording the fake microphone plays, over and over."""


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with served(model_dir, tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Headless chromium whose microphone is a WAV copy of `MICROPHONE` and whose permission
    prompts are answered yes."""
    folder = tmp_path_factory.mktemp("browser")
    microphone = folder / "microphone.wav"
    samples, rate = soundfile.read(MICROPHONE, dtype="int16")
    soundfile.write(microphone, samples, rate, subtype="PCM_16")
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for argument in (
        "--headless=new",
        "--no-sandbox",  # chromium refuses to run as root with its sandbox
        "--disable-dev-shm-usage",
        "--window-size=1000,900",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        f"--user-data-dir={folder / 'profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER, log_output=str(folder / "driver.log")))
    try:
        yield driver
    finally:
        driver.quit()


def shown(browser: webdriver.Chrome, element: str) -> str:
    return browser.find_element(By.ID, element).text


def wait_for_answer(browser: webdriver.Chrome) -> str:
    """The page's status line once the server's answer is shown (within 60 s)."""
    WebDriverWait(browser, 60).until(
        lambda _: shown(browser, "status") and not shown(browser, "status").startswith(("Transcribing", "Recording"))
    )
    return shown(browser, "status")


def segment_rows(browser: webdriver.Chrome) -> list[tuple[str, str]]:
    """(times, text) of each row of the page's segment table."""
    rows = browser.find_elements(By.CSS_SELECTOR, "#segments tr")
    return [tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td")) for row in rows]


def test_the_page_names_the_model_and_transcribes_an_uploaded_recording(server, browser, model) -> None:
    expected = model.transcribe(FILES[0])
    browser.get(server.base + "/")
    WebDriverWait(browser, 30).until(lambda _: shown(browser, "model") == "Model: tiny (english)")
    browser.find_element(By.ID, "file").send_keys(str(FILES[0]))
    browser.find_element(By.ID, "send").click()
    status = wait_for_answer(browser)
    assert status == f"{FILES[0].name}: {expected.duration:.1f} s of audio"
    assert shown(browser, "text") == expected.text
    rows = segment_rows(browser)
    assert [text for _, text in rows] == [segment.text for segment in expected.segments]
    assert rows[0][0].startswith("0:0") and " – " in rows[0][0]


def test_the_page_records_the_microphone_and_transcribes_the_recording(server, browser) -> None:
    browser.get(server.base + "/")
    browser.find_element(By.ID, "record").click()
    WebDriverWait(browser, 30).until(lambda _: browser.find_element(By.ID, "stop").is_enabled())
    browser.execute_async_script("setTimeout(arguments[arguments.length - 1], 2500)")  # 2.5 s of speech
    browser.find_element(By.ID, "stop").click()
    status = wait_for_answer(browser)
    assert status.startswith("microphone.wav: "), status
    seconds = float(status.removeprefix("microphone.wav: ").removesuffix(" s of audio"))
    assert 1.5 <= seconds <= 6.0  # what was recorded, at whatever rate the browser records
    assert shown(browser, "text") not in ("", "(no words)") and segment_rows(browser)


def test_the_page_shows_the_server_s_message_for_a_file_that_is_not_audio(server, browser, tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("words\n" * 50)
    browser.get(server.base + "/")
    browser.find_element(By.ID, "file").send_keys(str(notes))
    browser.find_element(By.ID, "send").click()
    status = wait_for_answer(browser)
    assert status.startswith("Error 400: notes.txt: not a readable audio file"), status
    assert browser.find_element(By.ID, "status").get_attribute("class") == "error"
    assert shown(browser, "text") == "" and segment_rows(browser) == []


def test_with_an_api_key_the_page_asks_for_it_and_then_transcribes(model_dir, browser, model, tmp_path) -> None:
    with served(model_dir, tmp_path, env={"ASR_API_KEY": "secret"}) as server:
        browser.get(server.base + "/")
        WebDriverWait(browser, 30).until(lambda _: shown(browser, "model") == "Model: enter the API key below")
        browser.find_element(By.ID, "file").send_keys(str(FILES[0]))
        browser.find_element(By.ID, "send").click()
        assert wait_for_answer(browser).startswith("Error 401: no API key")
        browser.find_element(By.ID, "key").send_keys("secret\n")
        browser.find_element(By.ID, "model").click()  # the key field loses focus: its change is seen
        WebDriverWait(browser, 30).until(lambda _: shown(browser, "model") == "Model: tiny (english)")
        browser.find_element(By.ID, "send").click()
        assert wait_for_answer(browser) == f"{FILES[0].name}: {model.transcribe(FILES[0]).duration:.1f} s of audio"
        assert shown(browser, "text") == model.transcribe(FILES[0]).text
