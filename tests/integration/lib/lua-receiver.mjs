// receiver.mjs: a webhook receiver on 127.0.0.1:0 for the Lua tests.
//
// startReceiver() resolves with { url, port, requests, waitFor(pred, ms), close() }.
// Paths: /echo answers the request as JSON; /status/<n> answers n;
// /slow answers after 2 s; anything else answers `reply(req)`'s status
// (200 unless set). Every request is recorded in `requests`.
import http from 'node:http';

export async function startReceiver({ reply } = {}) {
  const requests = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const r = { method: req.method, url: req.url, headers: req.headers, body, at: Date.now() };
      requests.push(r);
      for (const w of [...waiters]) if (w.pred(r)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(r); }
      res.setHeader('x-receiver', 'yes');
      if (req.url.startsWith('/echo')) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ method: r.method, url: r.url, headers: r.headers, body }));
      } else if (req.url.startsWith('/status/')) {
        res.statusCode = Number(req.url.slice(8));
        res.end('status');
      } else if (req.url.startsWith('/slow')) {
        setTimeout(() => res.end('slow'), 2000).unref();
      } else {
        res.statusCode = reply ? reply(r) : 200;
        res.end('ok');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    // Resolves with the first request (already received or coming) that pred accepts.
    waitFor(pred, ms = 10000) {
      const seen = requests.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) { waiters.splice(i, 1); reject(new Error('receiver: no matching request within ' + ms + ' ms')); }
        }, ms).unref();
      });
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
