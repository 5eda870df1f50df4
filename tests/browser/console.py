#!/usr/bin/python3
"""Drives the Bridgehead console in headless Chromium (Debian chromium +
chromium-driver, Selenium from python3-selenium). Run by tests/console.rs:

    console.py BASE_URL PASSWORD SMTP_PORT SINK_PORT SCREENSHOT_DIR

Exits 0 when every step passed; prints the step that failed otherwise.
"""

import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

base, password, smtp_port, sink_port, shots = sys.argv[1:6]
os.makedirs(shots, exist_ok=True)

opts = webdriver.ChromeOptions()
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
          "--window-size=1400,1000", "--no-first-run", "--disable-extensions"]:
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
driver.set_page_load_timeout(30)


def step(name):
    print("step:", name, flush=True)


def go(path):
    driver.get(base + path)


def fill(field, value):
    el = driver.find_element(By.ID, "f-" + field)
    el.clear()
    el.send_keys(value)


def click(element_id):
    # Destructive buttons ask first; the test always agrees.
    driver.execute_script("window.confirm = function () { return true; };")
    driver.find_element(By.ID, element_id).click()


def text():
    return driver.find_element(By.TAG_NAME, "body").text


def shot(name):
    driver.save_screenshot(os.path.join(shots, name + ".png"))


def settle(cond, secs=15):
    """Waits for a condition on the page (a click's navigation may finish after
    click() returns, more so on a loaded machine)."""
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            if cond():
                return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


def expect(cond, what):
    if callable(cond):
        cond = settle(cond)
    if not cond:
        print("FAILED:", what, "\n--- page ---\n", text()[:3000], flush=True)
        raise SystemExit(1)


try:
    step("log in")
    go("/")
    expect(lambda: "/login" in driver.current_url, "unauthenticated visit goes to the login page")
    fill("username", "admin")
    fill("password", "wrong password here")
    click("login-submit")
    expect(lambda: "Wrong user name or password" in text(), "a wrong password is refused")
    fill("username", "admin")
    fill("password", password)
    click("login-submit")
    expect(lambda: "Dashboard" in driver.title, "logged in to the dashboard")
    shot("dashboard")

    step("accepted domain")
    go("/org/hub-transport?tab=accepted-domains")
    fill("name", "example.com")
    Select(driver.find_element(By.ID, "f-type")).select_by_value("authoritative")
    click("new-accepted-domain-submit")
    expect(lambda: "Accepted domain example.com created." in text(), "domain created")
    fill("name", "relay.test")
    Select(driver.find_element(By.ID, "f-type")).select_by_value("external-relay")
    click("new-accepted-domain-submit")
    expect(lambda: "relay.test" in driver.find_element(By.ID, "accepted-domains").text, "second domain listed")
    shot("accepted-domains")

    step("validation error beside the field")
    fill("name", "<script>alert(1)</script>")
    click("new-accepted-domain-submit")
    expect(lambda: "not valid" in driver.find_element(By.ID, "err-name").text, "the error sits beside the Domain field")
    expect(len(driver.find_elements(By.TAG_NAME, "script")) == 1, "no injected script element")

    step("mailbox")
    go("/recipients/mailboxes/new")
    fill("address", "alice@example.com")
    fill("display_name", "Alice Smith")
    fill("password", "a-very-good-password")
    fill("quota_mb", "100")
    click("new-mailbox-submit")
    expect(lambda: "Mailbox alice@example.com created." in text(), "mailbox created")
    shot("mailboxes")

    step("send connector wizard")
    go("/org/hub-transport?tab=send-connectors")
    click("new-send-connector")
    fill("name", "Smarthost")
    Select(driver.find_element(By.ID, "f-usage")).select_by_value("custom")
    fill("address_spaces", "relay.test")
    fill("smart_hosts", "127.0.0.1:" + sink_port)
    click("send-wizard-submit")
    settle(lambda: driver.find_element(By.TAG_NAME, "pre"))
    cmd = driver.find_element(By.TAG_NAME, "pre").text
    expect("bridgehead send-connector new --name Smarthost" in cmd and "--smart-host 127.0.0.1:" + sink_port in cmd,
           "the last page shows the equivalent command: " + cmd)
    shot("send-connector-wizard")
    click("send-wizard-create-submit")
    expect(lambda: "Send connector Smarthost created." in text(), "connector created")

    step("message tracking")
    out = subprocess.run(["swaks", "--server", "127.0.0.1:" + smtp_port, "--from", "bob@relay.test",
                          "--to", "alice@example.com", "--header", "Subject: browser test"],
                         capture_output=True, text=True)
    expect(out.returncode == 0, "swaks sent: " + out.stdout[-500:])
    found = False
    for _ in range(40):
        go("/toolbox/tracking?recipient=alice%40example.com&since=1h")
        if "DELIVER" in driver.find_element(By.ID, "tracking-results").text:
            found = True
            break
        time.sleep(0.25)
    expect(found, "the delivery shows in Message Tracking")
    shot("message-tracking")

    step("queue viewer: suspend and resume")
    go("/toolbox/queues")
    rows = driver.find_element(By.ID, "queues").find_elements(By.TAG_NAME, "tr")
    idx = [i for i, r in enumerate(rows[1:]) if r.text.startswith("Mailbox delivery")][0]
    click("queue-suspend-%d" % idx)
    expect(lambda: "suspended" in text(), "queue suspended")
    row = [r for r in driver.find_element(By.ID, "queues").find_elements(By.TAG_NAME, "tr") if r.text.startswith("Mailbox delivery")][0]
    expect("Suspended" in row.text, "shown as Suspended: " + row.text)
    click("queue-resume-%d" % idx)
    expect(lambda: "resumed" in text(), "queue resumed")
    shot("queue-viewer")

    step("remove a message with NDR")
    # With the connector disabled, mail for relay.test waits in Unreachable.
    go("/org/hub-transport?tab=send-connectors")
    driver.find_element(By.XPATH, "//button[text()='Disable']").click()
    expect(lambda: "disabled" in text(), "connector disabled")
    time.sleep(1.5)  # the running server picks up changes within a second
    out = subprocess.run(["swaks", "--server", "127.0.0.1:" + smtp_port, "--from", "alice@example.com",
                          "--to", "carol@relay.test", "--header", "Subject: to be removed"],
                         capture_output=True, text=True)
    expect(out.returncode == 0, "swaks queued: " + out.stdout[-500:])
    link = None
    for _ in range(40):
        go("/toolbox/messages?queue=unreachable")
        links = driver.find_element(By.ID, "messages").find_elements(By.TAG_NAME, "a")
        if links:
            link = links[0]
            break
        time.sleep(0.25)
    expect(link is not None, "the message waits in Unreachable")
    link.click()
    expect(lambda: "carol@relay.test" in text(), "message details list the recipient")
    shot("message-details")
    click("message-removetrue")
    expect(lambda: "removed with NDR" in text(), "removed with NDR")
    found = False
    for _ in range(40):
        go("/toolbox/tracking?recipient=carol%40relay.test&since=1h")
        t = driver.find_element(By.ID, "tracking-results").text
        if "FAIL" in t:
            found = True
            break
        time.sleep(0.25)
    expect(found, "the removal shows in tracking")

    step("audit log")
    go("/audit")
    a = driver.find_element(By.ID, "audit").text
    expect("mailbox.new" in a and "send-connector.new" in a and "message.remove" in a, "changes are audited")

    step("log out")
    click("logout")
    expect(lambda: "/login" in driver.current_url, "back on the login page")
    go("/recipients/mailboxes")
    expect("/login" in driver.current_url, "the session is gone")
    print("all steps passed", flush=True)
finally:
    driver.quit()
