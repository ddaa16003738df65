from pathlib import Path

import httpx
from example_harness import serve


def test_the_report_reflects_the_request(tmp_path: Path) -> None:
    with serve("raw_http/app.py", tmp_path) as server:
        got = httpx.post(
            server.url + "/some/path?x=1&y=%20", content=b"a" * 1000, headers={"x-demo": "yes"}
        )
        assert got.status_code == 200
        report = got.json()
        assert report["method"] == "POST"
        assert report["path"] == "/some/path"
        assert report["query_string"] == "x=1&y=%20"
        assert report["http_version"] == "1.1"
        assert ["x-demo", "yes"] in report["headers"]
        assert report["client"][0] == "127.0.0.1"
        assert report["body_bytes"] == 1000
        assert httpx.get(server.url + "/").json()["body_bytes"] == 0
