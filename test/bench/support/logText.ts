import { encodedForms } from '../../../domain/redaction';

/** Deterministic (mulberry32), so every run measures the same text. */
export function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ALNUM = B64.slice(0, 62);
const HEX = '0123456789abcdef';

class Gen {
  constructor(readonly rnd: () => number) {}
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rnd() * items.length)]!;
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  str(alphabet: string, n: number): string {
    let out = '';
    for (let i = 0; i < n; i++) out += alphabet[Math.floor(this.rnd() * alphabet.length)];
    return out;
  }
  base64(bytes: number): string {
    const buf = Buffer.allocUnsafe(bytes);
    for (let i = 0; i < bytes; i++) buf[i] = this.int(256);
    return buf.toString('base64');
  }
}

export interface BenchSecret {
  readonly name: string;
  readonly value: string;
}

/** Secrets in the shapes real ones take: GitHub and OpenAI-style tokens, hex and base64 keys, passwords, URLs with credentials. */
export function makeSecrets(count: number, seed = 7): BenchSecret[] {
  const g = new Gen(prng(seed));
  const shapes: Array<() => string> = [
    () => `ghp_${g.str(ALNUM, 36)}`,
    () => g.str(HEX, 40),
    () => `${g.str(B64, 43)}=`,
    () => `sk-${g.str(ALNUM, 48)}`,
    () => `p@ss "${g.str(ALNUM, 12)}" <&> ü`,
    () => `https://deploy:${g.str(ALNUM, 20)}@git.example.com/repo.git`,
  ];
  return Array.from({ length: count }, (_, i) => ({ name: `SECRET_${i}`, value: shapes[i % shapes.length]!() }));
}

const PATHS = ['/api/v1/items', '/api/workspaces/ws-123/runs', '/healthz', '/api/gateway/operations', '/v2/repos/acme/web/pulls'];
const PACKAGES = ['lodash', 'react', '@azure/storage-blob', 'typescript', 'esbuild', '@types/node'];

/** Lines of build and service output: access logs, JSON logs, npm and git output, stack traces, base64 blobs. */
function logLine(g: Gen, n: number): string {
  const ts = `2024-05-01T${String(10 + (n % 12)).padStart(2, '0')}:${String(n % 60).padStart(2, '0')}:${String((n * 7) % 60).padStart(2, '0')}.${String(n % 1000).padStart(3, '0')}Z`;
  const r = g.rnd();
  if (r < 0.3)
    return `${ts} ${g.pick(['INFO', 'DEBUG', 'WARN', 'ERROR'])} [worker-${n % 8}] ${g.pick(['GET', 'POST', 'PUT'])} ${g.pick(PATHS)}?page=${n % 17}&sort=desc status=${g.pick([200, 201, 204, 404, 500])} duration=${n % 997}ms requestId=${g.str(HEX, 32)}`;
  if (r < 0.5)
    return `{"level":"${g.pick(['info', 'debug', 'warn'])}","time":"${ts}","msg":"${g.pick(['processed batch', 'cache miss', 'retrying request', 'connection reset'])}","count":${n % 1000},"req":{"method":"${g.pick(['GET', 'POST'])}","url":"https://api.example.com${g.pick(PATHS)}","headers":{"user-agent":"node-fetch/3.3.2","x-request-id":"${g.str(HEX, 16)}"}},"etag":"W/\\"${g.str(B64, 24)}\\""}`;
  if (r < 0.65)
    return `npm http fetch GET 200 https://registry.npmjs.org/${g.pick(PACKAGES)}/-/pkg-${n % 50}.${n % 9}.${n % 4}.tgz ${n % 300}ms (cache ${g.pick(['hit', 'miss', 'revalidated'])}) integrity=sha512-${g.str(B64, 86)}==`;
  if (r < 0.8)
    return `    at ${g.pick(['Object.<anonymous>', 'Module._compile', 'processTicksAndRejections', 'TableClient.submitTransaction', 'async Promise.all'])} (${g.pick(['/home/app/node_modules/some-lib/dist/index.js', 'node:internal/modules/cjs/loader', '/work/src/worker.ts'])}:${n % 900}:${n % 80})`;
  if (r < 0.88) return `${ts} DEBUG payload=${g.base64(48 + g.int(200))}`;
  if (r < 0.95)
    return `remote: ${g.pick(['Counting objects', 'Compressing objects', 'Total'])}: ${n % 101}% (${n % 50}/${50 + (n % 50)}), done. ${g.str(HEX, 7)}..${g.str(HEX, 7)}  main -> main`;
  // Tools print symbols outside Latin-1 now and then; it makes the text a two-byte string, as real output often is.
  return `${g.pick(['✓', '⚠', '✗', '→'])} ${g.pick(['built in', 'tests passed in', 'deprecated package, see', 'Über die Brücke'])} ${n % 5000}ms — ${g.pick(PACKAGES)}`;
}

export interface LogText {
  readonly text: string;
  /** Line numbers that carry a secret, and the exact string (a raw or encoded form) that leaked there. */
  readonly leaks: ReadonlyArray<{ readonly line: number; readonly form: string }>;
}

/**
 * About `bytes` UTF-8 bytes of log text; every `leakEvery`-th line also carries one secret, raw half of the
 * time and otherwise in one of the encoded forms the redactor masks.
 */
export function makeLogText(bytes: number, secrets: readonly BenchSecret[], leakEvery = 1000, seed = 42): LogText {
  const g = new Gen(prng(seed));
  const lines: string[] = [];
  const leaks: Array<{ line: number; form: string }> = [];
  let length = 0;
  for (let n = 0; length < bytes; n++) {
    let line = logLine(g, n);
    if (secrets.length > 0 && n % leakEvery === leakEvery - 1) {
      const secret = g.pick(secrets);
      const form = g.rnd() < 0.5 ? secret.value : g.pick(encodedForms(secret.value, 8));
      line += g.pick([` Authorization: Bearer ${form}`, ` token=${form}&next=1`, ` {"apiKey":"${form}"}`, ` <password>${form}</password>`]);
      leaks.push({ line: n, form });
    }
    lines.push(line);
    length += Buffer.byteLength(line) + 1;
  }
  return { text: lines.join('\n'), leaks };
}

/** Lines of `width` random base64 characters (a dumped blob), about `bytes` long. */
export function makeRandomBase64Text(bytes: number, seed = 43, width = 76): string {
  const g = new Gen(prng(seed));
  const lines: string[] = [];
  for (let length = 0; length < bytes; length += width + 1) lines.push(g.str(B64, width));
  return lines.join('\n');
}

/**
 * Text an agent could print to slow a redactor down: tokens that follow one of the secrets' own encoded
 * forms for most of its length (from half of it to all but one character), then go wrong: one character the
 * form does not have there, and a random tail to the form's length. No token is any form, so nothing masks.
 */
export function makeNearMissText(bytes: number, secrets: readonly BenchSecret[], seed = 44): string {
  const g = new Gen(prng(seed));
  const formsBySecret = secrets.map((s) => encodedForms(s.value, 8));
  const lines: string[] = [];
  let length = 0;
  while (length < bytes) {
    const tokens: string[] = [];
    while (tokens.length < 4) {
      const forms = g.pick(formsBySecret);
      const form = g.pick(forms);
      const keep = Math.floor(form.length / 2) + g.int(Math.ceil(form.length / 2));
      let wrong = g.pick([...B64]);
      while (wrong === form[keep]) wrong = g.pick([...B64]);
      const token = form.slice(0, keep) + wrong + g.str(B64, form.length - keep - 1);
      // One form can hold another (base64 inside its padded spelling, a core inside the whole): skip those.
      if (!forms.some((f) => token.includes(f))) tokens.push(token);
    }
    const line = `token=${tokens[0]} key=${tokens[1]} ${tokens[2]} "${tokens[3]}"`;
    lines.push(line);
    length += Buffer.byteLength(line) + 1;
  }
  return lines.join('\n');
}

/** Log text in which every line leaks a secret (raw or encoded): the cost of masking itself. */
export function makeMatchDenseText(bytes: number, secrets: readonly BenchSecret[], seed = 45): LogText {
  return makeLogText(bytes, secrets, 1, seed);
}
