// conns.mjs: opens N idle keep-alive connections to the gateway.
//
// Usage: node bench/conns.mjs --port PORT [--n 10000] [--parallel 200]
//
// Each connection sends one GET /healthz (so the server has seen a request
// on it, as a real idle keep-alive connection has), reads the answer and
// stays open. Prints "READY <open>" when done, then holds the connections
// until stdin closes (or 120 s pass), and exits.
import net from 'node:net';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => {
  if (v.startsWith('--')) a.push([v.slice(2), all[i + 1]]);
  return a;
}, []));
const port = Number(args.port);
const n = Number(args.n || 10000);
const parallel = Number(args.parallel || 200);

const socks = [];
let open = 0, failed = 0, started = 0;

function one() {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const t = setTimeout(() => { failed++; s.destroy(); resolve(); }, 10000);
    s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    s.on('data', (d) => {
      got += d;
      const i = got.indexOf('\r\n\r\n');
      const m = got.match(/content-length:\s*(\d+)/i);
      if (i >= 0 && m && got.length >= i + 4 + Number(m[1])) {
        clearTimeout(t);
        open++;
        socks.push(s);
        resolve();
      }
    });
    s.on('error', () => { clearTimeout(t); failed++; resolve(); });
  });
}

async function worker() {
  while (started < n) {
    started++;
    await one();
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
process.stdout.write(`READY ${open} ${failed}\n`);
const done = () => { for (const s of socks) s.destroy(); process.exit(0); };
process.stdin.on('end', done);
process.stdin.on('close', done);
process.stdin.resume();
setTimeout(done, 120000);
