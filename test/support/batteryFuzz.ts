import fc from 'fast-check';
import { expect } from 'vitest';
import type { BatteryBackend } from './batteryBackend';
import { rawRequest, type RawReply } from './batteryHttp';
import { LeakScanner } from './leakScan';

/** A value the fuzzer puts in bodies; like the workspace's secret, it must never come back in a reply. */
export const BODY_CANARY = 'fuzz-body-canary-value-8c7b6a59';

export interface FuzzTarget {
  backend: BatteryBackend;
  ws: string;
  runId: string;
  owner: string;
  member: string;
  secrets: Record<string, string>;
}

/** Every route of the public API and the host's own; `{x}` parts are filled by the case. */
export const ROUTES: readonly { method: string; path: string }[] = [
  { method: 'POST', path: '/api/workspaces' },
  { method: 'GET', path: '/api/workspaces/{ws}' },
  { method: 'DELETE', path: '/api/workspaces/{ws}' },
  { method: 'POST', path: '/api/workspaces/{ws}/recover' },
  { method: 'PUT', path: '/api/workspaces/{ws}/members/{name}' },
  { method: 'DELETE', path: '/api/workspaces/{ws}/members/{name}' },
  { method: 'PUT', path: '/api/workspaces/{ws}/secrets/{name}' },
  { method: 'GET', path: '/api/workspaces/{ws}/secrets' },
  { method: 'DELETE', path: '/api/workspaces/{ws}/secrets/{name}' },
  { method: 'POST', path: '/api/workspaces/{ws}/secrets/{name}/revoke' },
  { method: 'POST', path: '/api/workspaces/{ws}/runs' },
  { method: 'GET', path: '/api/workspaces/{ws}/runs/{run}' },
  { method: 'GET', path: '/api/workspaces/{ws}/runs/{run}/transcript' },
  { method: 'POST', path: '/api/workspaces/{ws}/runs/{run}/cancel' },
  { method: 'GET', path: '/api/workspaces/{ws}/audit' },
  { method: 'GET', path: '/api/workspaces/{ws}/audit/verify' },
  { method: 'POST', path: '/api/gateway/operations' },
  { method: 'GET', path: '/api/.well-known/jwks.json' },
  { method: 'GET', path: '/api/health' },
  { method: 'GET', path: '/dev-issuer/.well-known/jwks.json' },
  { method: 'PATCH', path: '/api/workspaces/{ws}/secrets/{name}' },
  { method: 'GET', path: '/api/no/such/route/{name}' },
];

const INJECT = '%0D%0AX-Injected:%20yes';
const segment = fc.oneof(
  fc.constantFrom('..', '../..', '%2e%2e', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..%2F..%2F', 'lower', '1BAD', 'A'.repeat(300), '', '%20', '%C3%BF', '%F0%9F%98%80', '%00',
    `a${INJECT}`, 'NPM-TOKEN', '%E2%80%AE', '%ED%A0%80', '%FF%FE', 'CON', '.git', '~root', '%25', '*', '%2F'),
  fc.string({ maxLength: 40 }).map((s) => encodeURIComponent(s)),
  fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => encodeURIComponent(s)),
);

const canaryObject = (extra: Record<string, unknown>): string => JSON.stringify({ value: BODY_CANARY, ...extra });
const body = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('{', '{"value":', 'null', '[]', '"str"', '0', 'true', '{"value":12345678}', '{"value":"short"}', '{"role":"admin"}', '{"role":["owner"]}', '{"name":""}',
    '{"name":null}', '{"name":"' + 'n'.repeat(10_000) + '"}', `{"value":"${'x'.repeat(30_000)}"}`, canaryObject({ extra: true }), canaryObject({ allowedHosts: 'http://evil/' }),
    canaryObject({ allowedHosts: ['../../x'] }), '\uFEFF' + canaryObject({ extra: 1 }), '{"value":"\\ud800abcdefgh"}', '{"__proto__":{"x":1},"value":"ok-value-123","y":2}',
    '{"constructor":{"prototype":{"polluted":true}}}', '['.repeat(5000) + ']'.repeat(5000), '{"a":'.repeat(3000) + '1' + '}'.repeat(3000),
    '{"kind":"http","url":"http://127.0.0.1/","secret":"CANARY"}', '{"kind":"git","args":["push"]}', '{"kind":"npm-install","packages":["../x"]}',
    '{"template":{"files":{"../../etc/passwd":"x"}},"turns":[{"command":["sh"]}],"deadlineSeconds":10}',
    '{"template":{"files":{}},"turns":[{"command":"rm -rf /"}],"deadlineSeconds":"10"}',
    JSON.stringify({ template: { files: { 'a.js': '' } }, turns: [{ command: ['node'] }], deadlineSeconds: 1e308, env: { X: BODY_CANARY } }),
    '{"name":"\u0000\u202e\ud83d"}', '{"name":"a","name":"b","x":1}', '\u0000\u0001\u0002', 'a=1&b=2'),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
);
/** Named, not spelled out, so a failing case prints short; `requestOf` expands it. */
const hugeBody = fc.constantFrom('HUGE:2097152', 'HUGE:614400', 'HUGE:65536');
const contentType = fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', '', 'application/json; charset=utf-8', 'application/json; charset=utf-16',
  'multipart/form-data; boundary=x', 'application/problem+json', `application/json${'\r\nX-Injected: yes'}`);
const auth = fc.constantFrom('owner', 'member', 'none', 'garbage', 'basic', 'empty-bearer', 'owner-lowercase-scheme', 'two-tokens');
const query = fc.constantFrom('', '?after=-1', '?limit=0', '?limit=abc', '?after=1e99', '?limit=1&limit=2', '?x=%00', `?after=${INJECT}`, '?retentionDays=abc', '?retentionDays=1', '?retentionDays=100000');

export const fuzzCase = fc.record({
  route: fc.constantFrom(...ROUTES),
  ws: fc.oneof(fc.constant('WS'), segment),
  name: segment,
  run: fc.oneof(fc.constant('RUN'), segment),
  query,
  body: fc.oneof({ weight: 20, arbitrary: body }, { weight: 1, arbitrary: hugeBody }),
  contentType,
  auth,
});

export type FuzzCase = typeof fuzzCase extends fc.Arbitrary<infer T> ? T : never;

function authHeader(c: FuzzCase, t: FuzzTarget): string | undefined {
  switch (c.auth) {
    case 'owner': return `Bearer ${t.owner}`;
    case 'member': return `Bearer ${t.member}`;
    case 'garbage': return 'Bearer not-a-jwt';
    case 'basic': return 'Basic YWxpY2U6cGFzc3dvcmQ=';
    case 'empty-bearer': return 'Bearer ';
    case 'owner-lowercase-scheme': return `bearer ${t.owner}`;
    case 'two-tokens': return `Bearer ${t.owner}, Bearer ${t.member}`;
    default: return undefined;
  }
}

/** The case as a request: the real workspace and run where the case says so; never a request that would destroy them. */
export function requestOf(c: FuzzCase, t: FuzzTarget): { method: string; target: string; headers: Record<string, string>; body?: string } {
  let q = c.route.path === '/api/workspaces/{ws}/audit' || c.route.method === 'DELETE' ? c.query : '';
  // A valid DELETE of the workspace would be a real deletion, not bad input: keep its retention invalid.
  if (c.route.method === 'DELETE' && c.route.path === '/api/workspaces/{ws}' && !/retentionDays=(abc|1$|100000)/.test(q)) q = '?retentionDays=abc';
  // A revoke removes the value as a delete does: neither may touch what the battery checks survives.
  const destructive = c.route.method === 'DELETE' || c.route.path.endsWith('/revoke');
  const name = destructive && (c.name === 'CANARY' || c.name === 'bob') ? 'not-there' : c.name;
  const target = c.route.path.replace('{ws}', c.ws === 'WS' ? t.ws : c.ws).replace('{name}', name).replace('{run}', c.run === 'RUN' ? t.runId : c.run) + q;
  const headers: Record<string, string> = {};
  const a = authHeader(c, t);
  if (a !== undefined) headers.authorization = a;
  if (c.contentType) headers['content-type'] = c.contentType;
  const huge = /^HUGE:(\d+)$/.exec(c.body ?? '');
  const body = huge ? `{"value":"${BODY_CANARY}","pad":"${'h'.repeat(Number(huge[1]))}"}` : c.body;
  return { method: c.route.method, target, headers, ...(body !== undefined ? { body } : {}) };
}

/** The correlation id each fuzzed request carries, so a record it caused names it whenever it lands. */
const FUZZ_CORRELATION = 'fuzz-';

/** Records in the workspace's log other than AccessDenied (authenticated refusals are expected to be recorded). */
export async function meaningfulRecords(t: FuzzTarget): Promise<number> {
  return (await logAfter(t)).records.length;
}

type AuditedRecord = { type: string; sequence: number; meta: { actor: string; correlationId: string } };

/**
 * The workspace's audit records after a sequence number but the refusals the fuzz itself causes (`AccessDenied`),
 * and the sequence number of the last record read: the next case reads only what came after it.
 */
export async function logAfter(t: FuzzTarget, after = 0): Promise<{ records: AuditedRecord[]; head: number }> {
  const records: AuditedRecord[] = [];
  let head = after;
  for (;;) {
    const reply = await t.backend.call(t.owner, 'GET', `/api/workspaces/${t.ws}/audit?after=${head}&limit=500`);
    expect(reply.status, reply.text).toBe(200);
    const page = reply.json as { records: AuditedRecord[]; next?: number };
    records.push(...page.records.filter((r) => r.type !== 'AccessDenied'));
    head = page.records.at(-1)?.sequence ?? head;
    if (page.next === undefined) return { records, head };
  }
}

/**
 * A record some request stored: it carries a fuzzed request's correlation id (the case's own, or an earlier
 * case's effect landing late), a person's name, or reports a projection that did not check out (nothing
 * the fuzz sends may make a verified read disagree with the log). What is left is the platform's own jobs
 * (a timer's record carries its own correlation id), which run beside the fuzz and are listed, not counted.
 */
export function storedByRequest(record: AuditedRecord): boolean {
  return record.meta.correlationId.startsWith(FUZZ_CORRELATION) || !record.meta.actor.startsWith('system:') || record.type === 'ProjectionMismatchDetected';
}

/** Background records seen during the fuzz, printed with the tally so they are never silently passed over. */
export const backgroundRecords: string[] = [];

const SAFE_2XX = new Set(['GET']);

/** The last requests sent and their answers, for diagnosing a failure after fast-check has shrunk it away. */
export const recentCases: string[] = [];

let caseNumber = 0;

/**
 * Sends one case and checks the reply (never 5xx, 4xx as a problem body, no value and no injected header back) and
 * what the log gained after `head`, the last sequence seen; returns the new head.
 */
export async function checkCase(c: FuzzCase, t: FuzzTarget, head: number): Promise<{ reply: RawReply; head: number }> {
  const r = requestOf(c, t);
  r.headers['x-correlation-id'] = `${FUZZ_CORRELATION}${++caseNumber}`;
  const reply = await rawRequest(t.backend.host!.port, r.method, r.target, r.headers, r.body);
  const label = `${r.method} ${r.target.slice(0, 120)} auth=${c.auth} ct=${c.contentType} body=${String(r.body).slice(0, 80)}`;
  recentCases.push(`${label} → ${reply.status} ${reply.body.slice(0, 120)}`);
  if (recentCases.length > 8) recentCases.shift();
  expect(reply.status, `${label} → ${reply.status} ${reply.body.slice(0, 300)}`).toBeGreaterThanOrEqual(200);
  expect(reply.status, `${label} → ${reply.body.slice(0, 300)}`).toBeLessThan(500);
  if (reply.status >= 400) {
    expect(reply.headers['content-type'] ?? '', label).toContain('application/problem+json');
    const problem = JSON.parse(reply.body) as { status: number; code: string; title: string };
    expect(problem.status, label).toBe(reply.status);
    expect(typeof problem.code, label).toBe('string');
  } else {
    expect(SAFE_2XX.has(r.method) || r.target.endsWith('/recover'), `${label} was accepted: ${reply.status}`).toBe(true);
  }
  expect(reply.head.toLowerCase(), label).not.toContain('x-injected');
  const scanner = new LeakScanner({ ...t.secrets, BODY_CANARY });
  scanner.scan('reply', label, reply.head + reply.body);
  expect(scanner.report.hits, label).toEqual([]);
  // Read after the previous case's head, so the thousands of AccessDenied records a soak gathers are read once.
  const { records: appeared, head: headNow } = await logAfter(t, head);
  const stored = appeared.filter(storedByRequest);
  expect(stored, `${label} stored a record; the log ends with ${JSON.stringify(appeared).slice(0, 1500)}`).toEqual([]);
  for (const record of appeared) backgroundRecords.push(`${record.type} by ${record.meta.actor} (${record.meta.correlationId}) during ${label}`);
  return { reply, head: headNow };
}
