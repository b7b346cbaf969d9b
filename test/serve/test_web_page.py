"""The chat page at `/`, driven in headless Chromium against a real server and model."""

import re
import shutil
import time

import httpx
import pytest

from alloy.serve.config import ServeConfig
from alloy.serve.server import ServerThread

MODEL = "smollm2:135m"
WAIT_S = 120  # bound on one reply on a slow machine (the first request also warms the engine up)


@pytest.fixture(scope="module")
def server(smollm2_gguf_path):  # the path fixture only skips when the packaged model is missing
    with ServerThread(ServeConfig(model=MODEL, port=0, ctx=512, max_queue=4)) as s:
        yield s


def test_page_served_to_every_client(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-cache"
    assert "Alloy is running" in r.text  # what Ollama-style probes of / look for
    head = httpx.head(server.url + "/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == "text/html; charset=utf-8"
    assets = {"/static/chat.js": "text/javascript", "/static/chat.css": "text/css"}
    for path, ctype in assets.items():
        a = httpx.get(server.url + path)
        assert a.status_code == 200 and a.headers["Cache-Control"] == "no-cache"
        assert a.headers["Content-Type"] == f"{ctype}; charset=utf-8"
        assert f'"{path}"' in r.text
        assert not re.search(r"https?://", a.text), f"{path} refers to another site"
    # everything the page loads comes from this server
    refs = re.findall(r'(?:src|href)="([^"]*)"', r.text)
    assert refs and all(ref.startswith(("/", "data:")) for ref in refs), refs
    again = httpx.get(server.url + "/", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    assert httpx.get(server.url + "/static/missing.js").status_code == 404


# -- in the browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install "
                    "chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # with both paths given, Selenium Manager downloads nothing
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    yield driver
    driver.quit()


# Wraps fetch so a test can read what the page sent and the status it got back.
_RECORD_FETCH = """
window.calls = [];
const original = window.fetch;
window.fetch = (url, opts = {}) => {
  const call = {url: String(url), body: opts.body ? JSON.parse(opts.body) : null, status: null};
  window.calls.push(call);
  return original(url, opts).then((r) => { call.status = r.status; return r; });
};
"""


@pytest.fixture
def page(browser, server):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop earlier pages' console messages
    browser.get(server.url + "/")
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.getElementById('model').value") == MODEL)
    browser.execute_script(_RECORD_FETCH)
    browser.find_element("css selector", "#settings summary").click()  # open the settings
    return browser


def el(driver, element_id):
    return driver.find_element("id", element_id)


def set_field(driver, element_id, value):
    field = el(driver, element_id)
    field.clear()
    field.send_keys(str(value))


def wait_until(driver, condition, timeout=WAIT_S, message=""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)


def idle(driver):
    return el(driver, "send").is_enabled() and not el(driver, "stop").is_enabled()


def replies(driver):
    """(text, footnote) of each assistant message, exactly as the page holds them."""
    return [(m.find_element("css selector", ".text").get_property("textContent"),
             m.find_element("css selector", ".meta").get_property("textContent"))
            for m in driver.find_elements("css selector", ".msg.assistant")]


def wait_reply(driver, n):
    """Wait for the n-th reply to finish (or an error); fail with the page's error message."""
    def done(d):
        if el(d, "error").is_displayed():
            return True
        r = replies(d)
        return idle(d) and len(r) == n and r[-1][1]  # the footnote is written when a reply ends
    wait_until(driver, done, message=f"reply {n} did not finish")
    assert not el(driver, "error").is_displayed(), el(driver, "error").text
    return replies(driver)[-1]


def chat_calls(driver):
    return [c for c in driver.execute_script("return window.calls")
            if c["url"].endswith("/v1/chat/completions")]


def test_chat_streams_a_multi_turn_conversation(page, server):
    from selenium.webdriver.common.keys import Keys

    options = [o.get_attribute("value") for o in page.find_elements("css selector", "#model option")]
    assert options == [MODEL]
    assert "Alloy is running" in page.find_element("css selector", "footer").text
    set_field(page, "temperature", 0)
    set_field(page, "max-tokens", 12)
    served_before = server.served.engine.stats.requests_total

    question = "What is the capital of France?"
    el(page, "prompt").send_keys(question)
    el(page, "send").click()
    text, note = wait_reply(page, 1)
    assert text.strip() and "Paris" in text
    assert "tokens in" in note

    # the streamed reply is what the API gives for the same request
    expected = httpx.post(server.url + "/v1/chat/completions", timeout=WAIT_S, json={
        "model": MODEL, "messages": [{"role": "user", "content": question}],
        "temperature": 0, "max_tokens": 12}).json()["choices"][0]["message"]["content"]
    assert text == expected

    # a second turn, sent with Enter and a system prompt, carries the history
    el(page, "system").send_keys("You are a geography teacher.")
    el(page, "prompt").send_keys("And of Germany?" + Keys.ENTER)
    assert wait_reply(page, 2)[0].strip()
    first, second = chat_calls(page)
    assert first["status"] == second["status"] == 200
    assert first["body"]["messages"] == [{"role": "user", "content": question}]
    assert second["body"]["messages"] == [
        {"role": "system", "content": "You are a geography teacher."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "And of Germany?"}]
    assert second["body"]["model"] == MODEL and second["body"]["stream"] is True
    assert second["body"]["temperature"] == 0 and second["body"]["max_tokens"] == 12

    assert server.served.engine.stats.requests_total >= served_before + 3  # two turns + the check
    metrics = httpx.get(server.url + "/metrics").text
    assert re.search(r'^alloy_http_requests_total\{[^}]*/v1/chat/completions[^}]*status="200"[^}]*\} [1-9]',
                     metrics, re.M), metrics

    el(page, "new-chat").click()
    assert replies(page) == [] and el(page, "empty").is_displayed()
    # no script errors, refused resources (the page's Content-Security-Policy) or failed loads
    assert [e for e in page.get_log("browser") if e["level"] == "SEVERE"] == []


def test_stop_cancels_the_generation(page, server):
    stats = server.served.engine.stats
    cancelled_before = stats.requests_cancelled
    set_field(page, "temperature", 0)
    set_field(page, "max-tokens", 2000)  # far more than it can write before the click
    el(page, "prompt").send_keys("Write a long story about a dragon who learns to fly.")
    el(page, "send").click()
    wait_until(page, lambda d: replies(d) and replies(d)[0][0].strip(), message="no text streamed")
    assert el(page, "stop").is_enabled()
    el(page, "stop").click()
    wait_until(page, idle, 10, "the page did not return to idle after stop")
    (text, note), = replies(page)
    assert text.strip() and note == "stopped"
    assert not el(page, "error").is_displayed()
    deadline = time.monotonic() + 30
    while stats.requests_cancelled <= cancelled_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats.requests_cancelled > cancelled_before, "the server did not cancel the request"
    assert stats.finish_reasons.get("cancelled", 0) >= 1


def test_server_error_is_shown(page, server):
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 120)  # > 512 tokens
    page.execute_script("arguments[0].value = arguments[1]", el(page, "prompt"), long_text)
    el(page, "send").click()
    wait_until(page, lambda d: el(d, "error").is_displayed(), 30, "no error shown")
    wait_until(page, idle, 10)
    message = el(page, "error").text
    assert "context window is 512 tokens" in message, message  # the server's own words
    (call,) = chat_calls(page)
    assert call["status"] == 400
    assert replies(page) == []  # the failed turn is dropped ...
    assert el(page, "prompt").get_property("value") == long_text  # ... and its text given back
