from pathlib import Path

import httpx
from example_harness import serve


def test_the_first_line_arrives_while_the_app_waits(tmp_path: Path) -> None:
    with serve("fullflush/app.py", tmp_path) as server:
        with httpx.stream("GET", server.url + "/progress", timeout=5) as stream:
            lines = stream.iter_lines()
            # Read before the release: had the bytes stayed buffered, this would time out.
            assert next(lines) == "step 1 (fullflush advertised: True)"
            assert httpx.post(server.url + "/release").text == "released\n"
            assert next(lines) == "step 2"
