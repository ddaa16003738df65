-- wrk script for run_all.py's post workload: every request POSTs the same 16 KiB body
-- (wrk adds the Content-Length); the echo apps (apps/*_echo.py) send it back.
wrk.method = "POST"
wrk.body = string.rep("0123456789abcdef", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
