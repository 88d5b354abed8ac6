"""How fast the fake SODA server serves the census, so the sync benchmark measures the sync.

    .venv/bin/python -m benchmarks.bench_fake_soda [--rows 683788] [--page-size 50000]

For each format it starts `python -m tests.fakes.soda` as its own process, fetches every page
twice with plain `requests` (the first pass generates and caches the pages, the second is
served from the cache), then once more through `SocrataClient.iter_pages`, which adds the
client's body checks. It prints each pass's time, the bytes served and the server's RSS.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import requests

from trees.socrata import SocrataClient

REPO = Path(__file__).resolve().parents[1]
DATASET = "uvpi-gqnh"


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def plain_pass(url: str, fmt: str, page_size: int) -> tuple[float, int, int]:
    """Seconds, pages and bytes for every page fetched without any checking."""
    started, offset, pages, size = time.perf_counter(), 0, 0, 0
    with requests.Session() as session:
        while True:
            params = {"$select": ":*,*", "$order": ":id", "$limit": page_size, "$offset": offset}
            response = session.get(f"{url}/resource/{DATASET}.{fmt}", params=params, timeout=600)
            response.raise_for_status()
            pages, size, offset = pages + 1, size + len(response.content), offset + page_size
            # Records, counted cheaply: the fake writes one record per line.
            if fmt == "csv":
                rows = response.content.count(b"\n") - 1
            else:
                rows = response.content.count(b"\n,") + (len(response.content) > 4)
            if rows < page_size:
                return time.perf_counter() - started, pages, size


def client_pass(url: str, fmt: str, page_size: int) -> tuple[float, int]:
    started, rows = time.perf_counter(), 0
    with SocrataClient(url, format=fmt) as client:
        for page in client.iter_pages(DATASET, page_size=page_size):
            rows += page.row_count
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=683_788)
    parser.add_argument("--page-size", type=int, default=50_000)
    parser.add_argument("--formats", default="csv,json")
    args = parser.parse_args()

    for fmt in args.formats.split(","):
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.soda", "--rows", str(args.rows)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            url = server.stdout.readline().strip()
            if not url:
                raise SystemExit("the fake SODA server did not start (see its stderr above)")
            for label in ("first pass (generate + cache)", "second pass (cached)"):
                seconds, pages, size = plain_pass(url, fmt, args.page_size)
                print(
                    f"{fmt:4} {label:30} {seconds:7.2f} s  {pages} pages  "
                    f"{size / 1e6:6.0f} MB  server RSS {rss_mb(server.pid)} MB",
                    flush=True,
                )
            seconds, rows = client_pass(url, fmt, args.page_size)
            print(f"{fmt:4} {'SocrataClient.iter_pages':30} {seconds:7.2f} s  {rows} rows")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
