"""The web page in a real browser: Debian's headless Chromium driven by Playwright.

Against ``python -m server`` (real PostgreSQL and Redis): a crossing pair placed through
gRPC shows in the trade tape and moves the book on the page within a second (the page
follows the live feeds, no reload); an order placed through the form shows in the book and
in "my orders", and its Cancel button takes it out of both. Then the page is photographed
under load (the load generator running): with UPDATE_SCREENSHOT=1 the picture replaces
docs/img/web-page.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from api_keys import TEST_ADMIN_API_KEY, bearer
from live_exchange import ROOT, LiveExchange
from playwright.sync_api import Browser, Page, expect, sync_playwright

from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_command_service_pb2_grpc as cmd_grpc
from clients.generated.exchange.v1 import types_pb2 as types

CHROMIUM = "/usr/bin/chromium"
# "Within a second": how long the page may take to show what the feeds carry.
LIVE_MS = 1000
# Loading the page, typing, a click's answer.
UI_MS = 10_000
SCREENSHOT = ROOT / "docs" / "img" / "web-page.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "install Debian's chromium (make tools does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def _open_page(browser: Browser, live_exchange: LiveExchange, user_id: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_MS)
    page.goto(f"{live_exchange.http_url}/")
    page.fill("#api-key", live_exchange.key_for(user_id))
    page.click("#save-key")
    expect(page.locator("#connection")).to_have_text("live")
    expect(page.locator("#instrument")).to_have_value("BTC-USD")
    return page


def _place(live_exchange: LiveExchange, user_id: str, side: int, price: str, quantity: str) -> str:
    with grpc.insecure_channel(live_exchange.grpc_target) as channel:
        answer = cmd_grpc.OrderCommandServiceStub(channel).PlaceOrder(
            cmd.PlaceOrderRequest(
                instrument="BTC-USD",
                side=side,
                type=types.ORDER_TYPE_LIMIT,
                price=price,
                quantity=quantity,
                time_in_force=types.TIME_IN_FORCE_GTC,
            ),
            metadata=bearer(live_exchange.key_for(user_id)),
            timeout=10,
        )
    return str(answer.order.order_id)


def _cancel(live_exchange: LiveExchange, user_id: str, order_id: str) -> None:
    with grpc.insecure_channel(live_exchange.grpc_target) as channel:
        cmd_grpc.OrderCommandServiceStub(channel).CancelOrder(
            cmd.CancelOrderRequest(order_id=order_id),
            metadata=bearer(live_exchange.key_for(user_id)),
            timeout=10,
        )


def test_a_trade_and_a_book_change_show_within_a_second(
    browser: Browser, live_exchange: LiveExchange
) -> None:
    page = _open_page(browser, live_exchange, "watcher")
    maker = _place(live_exchange, "maker", types.SIDE_SELL, "100.00", "1")
    ask = page.locator("#asks tr[data-price='100.00']")
    expect(ask).to_contain_text("1.0000", timeout=LIVE_MS)
    taker = _place(live_exchange, "taker", types.SIDE_BUY, "100.00", "0.4")
    trade = page.locator("#trades tr").first
    expect(trade).to_contain_text("100.00", timeout=LIVE_MS)
    expect(trade).to_contain_text("0.4000", timeout=LIVE_MS)
    expect(ask).to_contain_text("0.6000", timeout=LIVE_MS)
    expect(page.locator("#last-price")).to_have_text("100.00", timeout=LIVE_MS)
    assert maker != taker
    _cancel(live_exchange, "maker", maker)  # the module's later tests start from an empty book
    expect(ask).to_have_count(0, timeout=LIVE_MS)
    page.close()


def test_an_order_from_the_form_shows_and_cancels(
    browser: Browser, live_exchange: LiveExchange
) -> None:
    page = _open_page(browser, live_exchange, "trader")
    page.check("input[name=side][value=BUY]")
    page.select_option("#order-type", "LIMIT")
    page.fill("#price", "90.10")
    page.fill("#quantity", "0.25")
    page.select_option("#tif", "GTC")
    page.click("#place")
    expect(page.locator("#form-message")).to_contain_text("OPEN")
    bid = page.locator("#bids tr[data-price='90.10']")
    expect(bid).to_contain_text("0.2500", timeout=LIVE_MS)
    mine = page.locator("#my-orders tr", has_text="90.10")
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("0.2500")
    expect(mine).to_contain_text("GTC")
    mine.locator("button.cancel").click()
    expect(mine).to_have_count(0)
    expect(bid).to_have_count(0, timeout=LIVE_MS)
    page.close()


def test_a_refused_order_says_why(browser: Browser, live_exchange: LiveExchange) -> None:
    page = _open_page(browser, live_exchange, "trader")
    page.fill("#price", "90.001")  # off the 0.01 tick grid
    page.fill("#quantity", "1")
    page.click("#place")
    expect(page.locator("#form-message")).to_contain_text("price: OFF_TICK_GRID")
    page.close()


def test_the_page_under_load(browser: Browser, live_exchange: LiveExchange, tmp_path: Path) -> None:
    page = _open_page(browser, live_exchange, "resting")
    # Orders of the page's own account, out of the load's prices: "my orders" shows them.
    _place(live_exchange, "resting", types.SIDE_BUY, "44990.00", "0.005")
    _place(live_exchange, "resting", types.SIDE_SELL, "45010.00", "0.003")
    expect(page.locator("#my-orders tr")).to_have_count(2)
    env = {**os.environ, "EXCHANGE_API_KEY": TEST_ADMIN_API_KEY}
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clients.cli",
            "--target",
            live_exchange.grpc_target,
            "load",
            "--orders",
            "4000",
            "--rate",
            "400",
            "--concurrency",
            "4",
            "--mid-price",
            "45000",
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # The load's trades fill the tape and its orders the ladder while it runs.
        expect(page.locator("#trades tr")).to_have_count(40, timeout=UI_MS * 3)
        expect(page.locator("#bids tr").first).to_be_visible()
        expect(page.locator("#asks tr").first).to_be_visible()
        picture = tmp_path / "web-page.png"
        page.screenshot(path=str(picture), full_page=True)
        assert picture.stat().st_size > 10_000
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(picture, SCREENSHOT)
    finally:
        load.terminate()
        _, errors = load.communicate(timeout=30)
    page.close()
    assert load.returncode in (0, -15), errors.decode()[-2000:]
