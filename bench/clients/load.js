// Load client for bench/run_ws.py and run_all.py (Node + the `ws` package from bench/node_modules).
//
//   node load.js echo URL CONNS SECONDS WARMUP [deflate]
//       CONNS WebSocket connections, each in a ping-pong loop (one 32-byte text message
//       in flight); counts echoes after WARMUP seconds for SECONDS seconds. With
//       "deflate" the client offers permessage-deflate and compresses every message.
//   node load.js sse URL CONNS SECONDS WARMUP
//       CONNS GETs with Accept: text/event-stream; counts events ("\n\n") received.
//   node load.js idle URL CONNS [deflate]
//       opens CONNS WebSockets, one echo each, prints a READY line, then stays idle
//       until stdin closes or it gets SIGTERM.
//
// Prints one JSON line with the result; "client_cpu" is this process's CPU use
// (user+system) as a fraction of one core over the measured window: near 1.0
// means the client, not the server, may be the bottleneck.
"use strict";
const path = require("path");
const http = require("http");
const WebSocket = require(path.join(__dirname, "..", "node_modules", "ws"));

const [mode, url, connsArg, a4, a5, a6] = process.argv.slice(2);
const conns = parseInt(connsArg, 10);
const MESSAGE = "0123456789abcdef0123456789abcdef";

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function openSockets(n, deflate) {
  // Open in small batches so the server's accept backlog is not the test.
  return new Promise((resolve, reject) => {
    const sockets = [];
    let opened = 0;
    let next = 0;
    const failTimer = setTimeout(() => reject(new Error(`only ${opened}/${n} opened`)), 30000);
    const openOne = () => {
      if (next >= n) return;
      next += 1;
      // With deflate the client compresses every message (ws's default threshold would
      // leave messages under 1 KiB uncompressed, so only the server's side would deflate).
      const ws = new WebSocket(url, {
        perMessageDeflate: deflate ? { threshold: 0, concurrencyLimit: 64 } : false,
      });
      ws.on("error", (err) => {
        clearTimeout(failTimer);
        reject(err);
      });
      ws.on("unexpected-response", (req, res) => {
        clearTimeout(failTimer);
        reject(new Error(`handshake answered ${res.statusCode}`));
      });
      ws.once("open", () => {
        sockets.push(ws);
        opened += 1;
        if (opened === n) {
          clearTimeout(failTimer);
          resolve(sockets);
        } else {
          openOne();
        }
      });
    };
    for (let i = 0; i < Math.min(32, n); i++) openOne();
  });
}

function cpuWindow() {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  return () => {
    const wall = Number(process.hrtime.bigint() - t0) / 1e6; // ms
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000 / wall;
  };
}

async function echo() {
  const seconds = parseFloat(a4);
  const warmup = parseFloat(a5);
  const deflate = a6 === "deflate";
  const sockets = await openSockets(conns, deflate);
  let counting = false;
  let count = 0;
  let errors = 0;
  let stopped = false;
  for (const ws of sockets) {
    ws.on("message", () => {
      if (counting) count += 1;
      if (!stopped) ws.send(MESSAGE);
    });
    ws.on("close", () => {
      if (!stopped) errors += 1;
    });
    ws.send(MESSAGE);
  }
  await new Promise((r) => setTimeout(r, warmup * 1000));
  counting = true;
  const cpu = cpuWindow();
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const clientCpu = cpu();
  stopped = true;
  out({
    mode,
    conns,
    messages: count,
    msgs_per_s: count / elapsed,
    errors,
    client_cpu: clientCpu,
    deflate: sockets.filter((ws) => ws.extensions.includes("permessage-deflate")).length,
  });
  for (const ws of sockets) ws.terminate();
}

async function sse() {
  const seconds = parseFloat(a4);
  const warmup = parseFloat(a5);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  let counting = false;
  let count = 0;
  let started = 0;
  let errors = 0;
  let stopped = false;
  const statuses = {};
  const requests = [];
  for (let i = 0; i < conns; i++) {
    const req = http.get(url, { agent, headers: { accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) {
        errors += 1;
        statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
        res.resume();
        return;
      }
      started += 1;
      let tail = "";
      res.setEncoding("latin1");
      res.on("data", (chunk) => {
        const text = tail + chunk;
        if (counting) {
          let at = text.indexOf("\n\n");
          while (at !== -1) {
            count += 1;
            at = text.indexOf("\n\n", at + 2);
          }
        }
        tail = text.endsWith("\n") ? "\n" : "";
      });
      res.on("error", () => {
        if (!stopped) errors += 1;
      });
    });
    req.on("error", () => {
      if (!stopped) errors += 1;
    });
    requests.push(req);
  }
  await new Promise((r) => setTimeout(r, warmup * 1000));
  counting = true;
  const cpu = cpuWindow();
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const clientCpu = cpu();
  stopped = true;
  out({
    mode,
    conns,
    streams: started,
    events: count,
    events_per_s: count / elapsed,
    errors,
    refused: statuses,
    client_cpu: clientCpu,
  });
  for (const req of requests) req.destroy();
}

async function idle() {
  const deflate = a4 === "deflate";
  const sockets = await openSockets(conns, deflate);
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise((resolve) => {
          ws.once("message", resolve);
          ws.send(MESSAGE);
        })
    )
  );
  let closed = 0;
  for (const ws of sockets) ws.on("close", () => (closed += 1));
  out({
    mode,
    ready: true,
    conns: sockets.length,
    deflate: sockets.filter((ws) => ws.extensions.includes("permessage-deflate")).length,
  });
  const finish = () => {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  };
  process.stdin.on("end", finish);
  process.stdin.on("close", finish);
  process.stdin.resume();
  process.on("SIGTERM", finish);
}

const modes = { echo, sse, idle };
if (!modes[mode]) {
  process.stderr.write("usage: node load.js echo|sse|idle URL CONNS ...\n");
  process.exit(2);
}
modes[mode]().catch((err) => {
  out({ mode, error: String(err && err.message ? err.message : err) });
  process.exit(1);
});
