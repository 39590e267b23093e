"""A real server on a loopback port: 8 concurrent clients, and a real headless browser."""

import concurrent.futures
import contextlib
import io
import shutil
import socket
import threading
import time

import httpx
import pytest

import actdb
from actdb.serve.app import ServeConfig, create_app
from tests.helpers import class_image

pytestmark = pytest.mark.slow  # a live server, 8 clients and a browser


@contextlib.contextmanager
def running_server(store, **config):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ServeConfig(store=store, **config)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(built_store):
    with running_server(built_store) as url:
        yield url


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    class_image(i % 3, 100 + i).save(buf, "PNG")
    return buf.getvalue()


def test_eight_concurrent_clients_mixed_requests(server, built_store):
    db = actdb.open(built_store)
    ids = db.store.images().image_id.tolist()

    def client_work(n: int) -> int:
        ok = 0
        with httpx.Client(base_url=server, timeout=60) as c:
            for i in range(6):  # bounded: 8 clients x 6 rounds x 4 requests
                image_id = ids[(n * 6 + i) % len(ids)]
                r = c.post("/api/nearest?k=3&include_self=true",
                           data={"image_id": str(image_id)})
                assert r.json()["queries"][0]["neighbors"][0]["image_id"] == image_id
                r = c.post("/api/nearest?k=2", files={"image": (f"u{n}_{i}.png", _png(n + i),
                                                                "image/png")})
                assert r.json()["queries"][0]["query"] == f"u{n}_{i}"
                r = c.post("/api/sql", json={"sql": "SELECT count(*) FROM images"})
                assert r.json()["rows"] == [[18]]
                r = c.get(f"/api/images/{image_id}/thumb")
                assert r.headers["content-type"] == "image/jpeg"
                ok += 4
        return ok

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        done = list(pool.map(client_work, range(8)))
    assert sum(done) == 8 * 6 * 4


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not "
                                    "installed (.ci/run installs it)")


@contextlib.contextmanager
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


@needs_chromium
def test_the_page_asks_for_the_token_once_and_sends_it(built_store, tmp_path):
    img = tmp_path / "drop.png"
    class_image(2, 78).save(img)
    asked = []
    with running_server(built_store, token="s3cret", warm_model=False) as url, \
            browser_page() as page:
        page.on("dialog", lambda d: (asked.append(d.message), d.accept("s3cret")))
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('info').textContent.includes("
                               "'block5_conv4')")
        page.click("text=pair distances")
        page.wait_for_selector("#sqlout table")
        assert len(asked) == 1 and "token" in asked[0]


@needs_chromium
def test_browser_upload_shows_neighbours(server, tmp_path):
    img = tmp_path / "drop.png"
    class_image(1, 77).save(img)
    with browser_page() as page:
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('info').textContent.includes('"
                               "block5_conv4')")
        page.set_input_files("#file", str(img))
        page.wait_for_selector(".neighbour", timeout=60_000)
        tiles = page.locator(".neighbour")
        assert tiles.count() >= 1
        assert "groenendael" in page.locator("#neighbours").inner_text()
        page.wait_for_selector("#map img", timeout=120_000)
        page.click("text=pair distances")
        page.wait_for_selector("#sqlout table")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
