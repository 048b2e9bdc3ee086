// Measures redactor throughput on synthetic log text. Not a test (no timing assertions in tests):
//   npm run build && node test/infra/redaction/throughput.cjs [sizeMiB=16] [secretCounts=100,1000]
// Times are CPU time (process.cpuUsage), best of several runs, so other load on the machine skews them less.
'use strict';
const path = require('node:path');
const { createRedactor, encodedForms } = require(path.join(__dirname, '../../../dist/domain/redaction.js'));

let seed = 42;
function rnd() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ALNUM = B64.slice(0, 62);
const HEX = '0123456789abcdef';
const randStr = (alphabet, n) => Array.from({ length: n }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');

/** Secrets in the shapes real ones take: GitHub tokens, hex keys, base64 keys, API keys, passwords. */
function makeSecrets(count) {
  return Array.from({ length: count }, (_, i) => {
    const value = [
      () => `ghp_${randStr(ALNUM, 36)}`,
      () => randStr(HEX, 40),
      () => `${randStr(B64, 43)}=`,
      () => `sk-${randStr(ALNUM, 48)}`,
      () => `p@ss${randStr(`${ALNUM}!#$%&*"<>`, 16)}`,
    ][i % 5]();
    return { name: `SECRET_${i}`, value };
  });
}

/** Access logs, npm output, JSON logs and stack traces (some non-ASCII), one leaked encoded value per 5000 lines. */
function makeLog(bytes, secrets) {
  const lines = [];
  let length = 0;
  for (let n = 0; length < bytes; n++) {
    const r = rnd();
    let line;
    if (r < 0.5)
      line = `2024-05-01T12:${String(n % 60).padStart(2, '0')}:00.${String(n % 1000).padStart(3, '0')}Z ${pick(['INFO', 'DEBUG', 'WARN'])} [worker-${n % 8}] ${pick(['GET', 'POST'])} ${pick(['/api/v1/items', '/api/workspaces/ws-123/runs', '/healthz'])}?page=${n % 17} status=${pick([200, 201, 404, 500])} duration=${n % 997}ms requestId=${randStr(HEX, 32)}`;
    else if (r < 0.7)
      line = `npm http fetch GET 200 https://registry.npmjs.org/${pick(['lodash', 'react', '@azure/storage-blob'])}/-/pkg-${n % 50}.tgz ${n % 300}ms (cache miss) integrity=sha512-${randStr(B64, 86)}==`;
    else if (r < 0.85)
      line = `{"level":"info","time":${1714564800000 + n},"msg":"processed batch","count":${n % 1000},"user":"alice@example.com","etag":"${randStr(B64, 24)}"}`;
    else line = `    at Object.<anonymous> (/home/app/node_modules/some-lib/dist/index.js:${n % 900}:${n % 80}) — Über die Brücke ${n}`;
    if (n % 5000 === 4999) line += ` leaked=${pick(encodedForms(pick(secrets).value, 8))}`;
    lines.push(line);
    length += line.length + 1;
  }
  return lines.join('\n');
}

function cpuSeconds(fn) {
  const start = process.cpuUsage();
  const result = fn();
  const used = process.cpuUsage(start);
  return { seconds: (used.user + used.system) / 1e6, result };
}
function best(fn, runs) {
  let seconds = Infinity;
  let result;
  for (let i = 0; i < runs; i++) {
    const r = cpuSeconds(fn);
    seconds = Math.min(seconds, r.seconds);
    result = r.result;
  }
  return { seconds, result };
}

const sizeMiB = Number(process.argv[2] ?? 16);
const counts = (process.argv[3] ?? '100,1000').split(',').map(Number);
for (const count of counts) {
  const secrets = makeSecrets(count);
  const build = cpuSeconds(() => createRedactor(secrets));
  const redactor = build.result;
  const text = makeLog(sizeMiB * 1024 * 1024, secrets);
  const mb = Buffer.byteLength(text) / 1e6;
  const batch = best(() => redactor.redact(text), 5);
  const chunks = [];
  for (let i = 0; i < text.length; i += 65536) chunks.push(Buffer.from(text.slice(i, i + 65536)).toString());
  const streamed = best(() => {
    const stream = redactor.stream();
    const out = chunks.map((c) => stream.push(c));
    out.push(stream.end());
    return out;
  }, 5);
  if (streamed.result.join('') !== batch.result) throw new Error('stream and batch disagree');
  const forms = [...new Set(secrets.flatMap((s) => encodedForms(s.value, 8)))];
  // The naive baseline: one replaceAll pass per form, on a 1 MiB sample to keep the run short.
  const sample = text.slice(0, 1024 * 1024);
  const naive = best(() => forms.reduce((t, f) => t.replaceAll(f, '[REDACTED]'), sample), 1);
  const naiveRate = Buffer.byteLength(sample) / 1e6 / naive.seconds;
  const rate = mb / batch.seconds;
  console.log(
    `${count} secrets, ${redactor.patternCount} patterns (build ${(build.seconds * 1000).toFixed(0)} ms), ${mb.toFixed(1)} MB: ` +
      `redact ${rate.toFixed(0)} MB/s, stream of 64 KiB chunks ${(mb / streamed.seconds).toFixed(0)} MB/s, ` +
      `naive replaceAll ${naiveRate.toFixed(1)} MB/s (${(rate / naiveRate).toFixed(0)}x), masks ${(batch.result.match(/\[REDACTED:/g) ?? []).length}`,
  );
}
