"""Service benchmark: requests/s and p50/p99 latency of /api/nearest by image_id and by
image upload (each upload a new image, so the model runs), 1 and 8 concurrent clients, on
loopback against `actdb serve` in its own process; then the upload latency while one slow
/api/sql query runs into its time limit, against idle (target: within 2x); and the model's own
batch-1 forward time in Keras, against which an upload's p50 is measured (target: within
1.0x; the server embeds with ONNX Runtime where the store keeps its model as ONNX).

    python bench/serve.py                      # 224 px store of 128 images (~4 min here)
    python bench/serve.py --size 64 --requests 8
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, make_jpeg_tree, parser  # noqa: E402


def wait_up(url: str, proc, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not start")


def jpeg(seed: int, size=(500, 375)) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize(size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def measure(url: str, clients: int, per_client: int, make_request) -> tuple[float, float, float]:
    import httpx

    def work(c: int) -> list[float]:
        times = []
        with httpx.Client(base_url=url, timeout=120) as h:
            for i in range(per_client):
                t = time.perf_counter()
                r = make_request(h, c * per_client + i)
                r.raise_for_status()
                times.append(time.perf_counter() - t)
        return times

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        times = [t for ts in pool.map(work, range(clients)) for t in ts]
    wall = time.perf_counter() - t0
    return len(times) / wall, float(np.percentile(times, 50) * 1e3), \
        float(np.percentile(times, 99) * 1e3)


SLOW_SQL = "SELECT count(*) FROM range(10000000000000) t(a) WHERE a % 7 = 3"


def head_of_line(url: str, by_upload, n: int) -> None:
    """New-image upload latency while one slow SQL query runs to its time limit, vs idle."""
    import threading

    import httpx

    def uploads(first: int) -> float:
        with httpx.Client(base_url=url, timeout=120) as h:
            times = []
            for i in range(first, first + n):
                t = time.perf_counter()
                by_upload(h, i).raise_for_status()
                times.append(time.perf_counter() - t)
        return float(np.median(times) * 1e3)

    idle = uploads(50_000)
    status = {}

    def slow():
        status["sql"] = httpx.post(url + "/api/sql", json={"sql": SLOW_SQL}, timeout=120
                                   ).status_code

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    busy = uploads(60_000)
    running = t.is_alive()
    t.join()
    print(f"upload p50 while a slow /api/sql runs (status {status['sql']}, still running "
          f"after the uploads: {running}): {busy:.1f} ms vs {idle:.1f} ms idle = "
          f"{busy / idle:.2f}x (target <= 2)")


def batch1_forward_ms(emb, size: int, runs: int = 15) -> float:
    """p50 of an embedder on one decoded image: what an upload cannot beat."""
    x = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    emb.embed(x)  # warm
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        emb.embed(x)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--size", type=int, default=224, help="input size in pixels of the store")
    ap.add_argument("--images", type=int, default=128, help="images in the store")
    ap.add_argument("--requests", type=int, default=40,
                    help="requests per client by image_id")
    ap.add_argument("--uploads", type=int, default=8,
                    help="requests per client by upload (each a new image)")
    args = ap.parse_args()
    import actdb

    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-serve-"))
    root = make_jpeg_tree(tmp / "data", 8, args.images // 8)
    store = tmp / "store"
    actdb.open(store).ingest(root, weights="random:0", image_size=args.size)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "actdb", "serve", "--map", "none",
                             "--store", str(store), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ})
    try:
        wait_up(url, proc)
        n = args.images

        def by_id(h, i):
            return h.post("/api/nearest?k=50", data={"image_id": str(i % n)})

        def by_upload(h, i):
            return h.post("/api/nearest?k=50",
                          files={"image": (f"u{i}.jpg", jpeg(10_000 + i), "image/jpeg")})

        print(f"store: {n} images at {args.size}px (random:0 weights), server pid {proc.pid}")
        upload_p50 = None
        for name, fn, per in (("image_id", by_id, args.requests),
                              ("upload", by_upload, args.uploads)):
            for clients in (1, 8):
                rps, p50, p99 = measure(url, clients, per, fn)
                print(f"/api/nearest by {name}, {clients} client(s): {rps:.1f} req/s, "
                      f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
                if name == "upload" and clients == 1:
                    upload_p50 = p50
        from actdb.models.embed import store_embedder
        from actdb.runtime import planned_route, query_embedder
        from actdb.store.store import Store

        st = Store.open(store)
        forward = batch1_forward_ms(store_embedder(st.manifest), args.size)
        onnx = query_embedder(st, "onnx")  # the ONNX model, exported if the store has none
        line = "" if onnx.runtime == "keras" else (
            f"; ONNX Runtime fp32 p50 {batch1_forward_ms(onnx, args.size):.1f} ms")
        served = planned_route(st)  # what the server embeds uploads with
        print(f"batch-1 forward (one decoded image, in this process, server idle): Keras "
              f"{st.manifest.precision} p50 {forward:.1f} ms{line}; the server embeds with "
              f"{served}: upload p50 / Keras forward = {upload_p50 / forward:.2f} "
              "(target <= 1.0)")
        head_of_line(url, by_upload, args.uploads)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
