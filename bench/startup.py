"""Start-up time: from ``python app.py`` to the first answered request, as a Space restart sees it.

    python bench/startup.py                       # this checkout's app.py, 3 starts
    python bench/startup.py --app-dir SPACE_DIR   # a folder written by `face-mtl space build`

Each start launches the app on a free loopback port (offline, fresh Gradio caches), polls its
page until it answers (``page_s``), then sends one example photo to ``/analyze_image`` with
``gradio_client`` and waits for the faces (``first_answer_s``, counted from the launch). It
also reads the app's own log for the import and model-load split when present. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app_server import free_port, offline_env, stop_server  # noqa: E402


def one_start(app_dir: Path | None, timeout: float) -> dict[str, float]:
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory(prefix="face_mtl_startup_") as folder:
        tmp = Path(folder)
        port = free_port()
        env = offline_env(tmp, port)
        if app_dir is not None:
            env.pop("PYTHONPATH", None)  # a Space runs the folder alone
        url = f"http://127.0.0.1:{port}/"
        log = (tmp / "server.log").open("w")
        began = time.monotonic()
        process = subprocess.Popen([sys.executable, "app.py"] if app_dir else [sys.executable, str(ROOT / "app.py")],
                                   cwd=app_dir or tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            page_s = None
            while time.monotonic() - began < timeout:
                if process.poll() is not None:
                    raise RuntimeError(f"app.py exited: {(tmp / 'server.log').read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            page_s = time.monotonic() - began
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.1)
            if page_s is None:
                raise RuntimeError(f"no page within {timeout} s")
            client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp / "downloads"))
            photo = (app_dir or ROOT) / "examples" / "group.jpg"
            outputs = client.predict(handle_file(str(photo)), api_name="/analyze_image")
            answer_s = time.monotonic() - began
            assert outputs[3]["count"] == 4, outputs[3]
        finally:
            stop_server(process)
            log.close()
    return {"page_s": round(page_s, 2), "first_answer_s": round(answer_s, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", type=Path, help="serve this folder's app.py (a Space build) instead")
    parser.add_argument("--starts", type=int, default=3, help="how many starts (default 3)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a start may take (default 300)")
    args = parser.parse_args(argv)
    runs = [one_start(args.app_dir, args.timeout) for _ in range(args.starts)]
    summary = {key: statistics.median(r[key] for r in runs) for key in ("page_s", "first_answer_s")}
    print(json.dumps({"app": str(args.app_dir or ROOT / "app.py"), "starts": runs, "median": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
