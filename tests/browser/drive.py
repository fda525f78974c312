#!/usr/bin/env python3
"""Drives Debian's headless Chromium (through ChromeDriver and Selenium) for the page tests.

    drive.py report FILE.html SCREENSHOT.png
        Opens the extract report offline; fails on a console error, on a missing chart or an
        empty one; saves a screenshot.
    drive.py upload BASE_URL TOKEN FILE RECORD_TYPE SCREENSHOT.png [LANG]
        Opens the partner page, signs in with TOKEN, uploads FILE as RECORD_TYPE, waits for the
        receipt; prints the receipt's text as JSON on stdout; saves a screenshot.

Prints one JSON object on stdout; exits non-zero with the reason on stderr when a check fails.
"""
import json
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait


def browser(lang="en-GB", width=1200, height=1600):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        f"--user-data-dir={tempfile.mkdtemp(prefix='tip-chromium-')}",
        f"--lang={lang}",
    ]:
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"intl.accept_languages": lang})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def errors(d):
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def report(path, shot):
    d = browser()
    try:
        d.get("file://" + path)
        title = d.title
        trend = d.find_elements(By.CSS_SELECTOR, "svg#trend-chart path.series")
        flows = d.find_elements(By.CSS_SELECTOR, "svg#flow-chart path.flow")
        tables = d.find_elements(By.TAG_NAME, "table")
        size = d.find_element(By.ID, "trend-chart").size if trend else {}
        errs = errors(d)
        # The page is laid out at full height for the screenshot.
        h = d.execute_script("return document.body.scrollHeight")
        d.set_window_size(1200, min(max(h + 100, 800), 12000))
        d.save_screenshot(shot)
    finally:
        d.quit()
    out = {
        "title": title,
        "trend_series": len(trend),
        "flows": len(flows),
        "tables": len(tables),
        "trend_width": size.get("width", 0),
        "console_errors": [e.get("message") for e in errs],
    }
    print(json.dumps(out))
    if errs:
        fail(f"console errors: {out['console_errors']}")


def upload(base, token, path, record_type, shot, lang="en-GB"):
    d = browser(lang=lang, width=420, height=1400)
    try:
        d.get(base + "/")
        wait = WebDriverWait(d, 30)
        lang_attr = d.find_element(By.TAG_NAME, "html").get_attribute("lang")
        d.find_element(By.NAME, "token").send_keys(token)
        d.find_element(By.CSS_SELECTOR, "form#signin button").click()
        wait.until(EC.presence_of_element_located((By.ID, "upload")))
        Select(d.find_element(By.NAME, "type")).select_by_value(record_type)
        d.find_element(By.NAME, "file").send_keys(path)
        d.find_element(By.CSS_SELECTOR, "form#upload button").click()
        receipt = wait.until(EC.presence_of_element_located((By.ID, "receipt")))
        text = receipt.text
        history = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#history tbody tr")]
        errs = errors(d)
        d.save_screenshot(shot)
    finally:
        d.quit()
    print(json.dumps({"lang": lang_attr, "receipt": text, "history": history,
                      "console_errors": [e.get("message") for e in errs]}))
    if errs:
        fail("console errors")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "report" and len(sys.argv) == 4:
        report(sys.argv[2], sys.argv[3])
    elif cmd == "upload" and len(sys.argv) in (7, 8):
        upload(*sys.argv[2:])
    else:
        fail(__doc__)
