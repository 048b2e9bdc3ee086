import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayHarness, type GatewayHarness, type LaunchedRun, type SecretSpec } from '../infra/gateway/gatewayHarness';
import { startGitHttpServer, type GitHttpServer } from '../support/gitHttpServer';
import { projectionKeys } from '../../domain/streams';
import { scanTexts, tableTexts } from '../support/leakScan';
import { startNpmRegistry, type NpmRegistry } from '../support/npmRegistry';
import { aSecretValue } from '../infra/sandbox/sandboxTestKit';
import { attackDirs, holdUntilPlanted, lootHolding, startPlanter, startTrap } from '../support/gitConfigAttack';

/** A local API that wants `Authorization: Bearer <token>` and echoes what it got, in raw and base64 form. */
interface EchoServer {
  readonly origin: string;
  readonly hostPort: string;
  readonly seen: Array<{ url: string; authorization?: string; custom?: string }>;
  close(): Promise<void>;
}

async function startEchoServer(token: string, redirectTo?: () => string): Promise<EchoServer> {
  const seen: EchoServer['seen'] = [];
  const server = http.createServer((req, res) => {
    const authorization = req.headers.authorization;
    seen.push({ url: req.url ?? '', ...(authorization !== undefined ? { authorization } : {}), ...(typeof req.headers['x-custom'] === 'string' ? { custom: req.headers['x-custom'] } : {}) });
    if (req.url === '/redirect' && redirectTo) {
      res.writeHead(302, { location: `${redirectTo()}/stolen` });
      res.end();
      return;
    }
    const ok = authorization === `Bearer ${token}`;
    const padded = /^\/padded\?n=(\d+)$/.exec(req.url ?? '');
    if (padded) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`${'x'.repeat(Number(padded[1]))}${authorization ?? ''}${'y'.repeat(4096)}`);
      return;
    }
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    const got = authorization ?? '';
    res.end(JSON.stringify({ ok, got, base64: Buffer.from(got).toString('base64') }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { origin: `http://127.0.0.1:${port}`, hostPort: `127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(() => r())) };
}

const hostOf = (origin: string): string => new URL(origin).host;

/** A server that answers only when the test lets it, so a test can look at the run while an operation is in flight. */
interface HeldServer {
  readonly origin: string;
  hold: Promise<void>;
  onRequest: () => void;
  close(): Promise<void>;
}

async function startHeldServer(): Promise<HeldServer> {
  const held: HeldServer = { origin: '', hold: Promise.resolve(), onRequest: () => undefined, close: async () => undefined };
  const server = http.createServer((_req, res) => {
    held.onRequest();
    void held.hold.then(() => res.end('done'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(held, {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  });
}

let h: GatewayHarness;
let git: GitHttpServer;
let otherGit: GitHttpServer;
let registry: NpmRegistry;
let api: EchoServer;
let slow: HeldServer;
let elsewhere: EchoServer;
let secrets: Record<'GIT' | 'NPM' | 'API' | 'SLOW', SecretSpec>;
let ws: string;
let run: LaunchedRun;
/** Runs before the git server serves each request: an attack test may hold the client there. */
let onGitRequest: () => void = () => undefined;

beforeAll(async () => {
  const tokens = { git: aSecretValue('ghp'), npm: aSecretValue('npm'), api: aSecretValue('api') };
  [git, otherGit, registry, elsewhere] = await Promise.all([
    startGitHttpServer(tokens.git, { onRequest: () => onGitRequest() }),
    startGitHttpServer(tokens.git),
    startNpmRegistry(tokens.npm),
    startEchoServer(tokens.api),
  ]);
  api = await startEchoServer(tokens.api, () => elsewhere.origin);
  slow = await startHeldServer();
  await git.createRepo('project', { 'README.md': 'hello\n' });
  await otherGit.createRepo('project', { 'README.md': 'elsewhere\n' });
  secrets = {
    GIT: { name: 'GIT_TOKEN', value: tokens.git, allowedHosts: [hostOf(git.origin)] },
    NPM: { name: 'NPM_TOKEN', value: tokens.npm, allowedHosts: [hostOf(registry.origin)] },
    API: { name: 'API_TOKEN', value: tokens.api, allowedHosts: [api.hostPort] },
    SLOW: { name: 'SLOW_TOKEN', value: aSecretValue('slow'), allowedHosts: [hostOf(slow.origin)] },
  };
  const testServers = [git.origin, otherGit.origin, registry.origin, api.origin, elsewhere.origin].map((origin) => new URL(origin).host);
  h = await createGatewayHarness({ testServers: () => testServers });
  ws = await h.workspace('Gateway', Object.values(secrets));
  run = await h.launch(ws, Object.values(secrets), { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', private: true }) });
});

afterAll(async () => {
  await h?.close();
  await Promise.all([git?.close(), otherGit?.close(), registry?.close(), api?.close(), elsewhere?.close(), slow?.close()]);
});

describe('POST /api/gateway/operations: git', () => {
  it('clones and pushes through the gateway; the credential process gets the token, the agent never does', async () => {
    const cloned = await h.operate(run.bearer, { kind: 'git', action: 'clone', remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN' });
    expect(cloned.status, cloned.text).toBe(200);
    expect(cloned.json).toMatchObject({ ok: true, exitCode: 0 });
    expect(readFileSync(path.join(run.sandbox.workspace, 'project', 'README.md'), 'utf8')).toBe('hello\n');

    const commit = await h.host.exec(run.sandbox, {
      argv: ['sh', '-c', 'echo change > CHANGE.md && git -c safe.directory="*" add CHANGE.md && git -c safe.directory="*" commit --quiet -m Change && git -c safe.directory="*" rev-parse HEAD'],
      identity: 'agent',
      cwd: 'project',
    });
    expect(commit.exitCode, commit.stderr).toBe(0);

    const pushed = await h.operate(run.bearer, { kind: 'git', action: 'push', remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN', dir: 'project', ref: 'HEAD:main' });
    expect(pushed.status, pushed.text).toBe(200);
    expect(pushed.json).toMatchObject({ ok: true, exitCode: 0 });
    expect(await git.revParse('project', 'main')).toBe(commit.stdout.trim());
    expect(git.requests.some((r) => r.user !== undefined)).toBe(true);
    expect(git.leaks).toEqual([]);
    expect(git.tokenSeenInUrl).toBe(false);
    expect(readFileSync(path.join(run.sandbox.workspace, 'project', '.git', 'config'), 'utf8')).not.toContain(secrets.GIT.value);

    const events = await h.runEvents(run);
    const types = events.map((e) => e.type);
    expect(types.filter((t) => t === 'OperationRequested')).toHaveLength(2);
    expect(types.filter((t) => t === 'OperationCompleted')).toHaveLength(2);
    const grants = events.filter((e) => e.type === 'LeaseGranted');
    expect(grants.map((g) => g.type === 'LeaseGranted' && g.data.channel)).toEqual(['git-credential-helper', 'git-credential-helper']);
    for (const grant of grants) {
      if (grant.type !== 'LeaseGranted') continue;
      expect(grant.data).toMatchObject({ secretName: 'GIT_TOKEN', secretVersion: 1 });
      expect(Date.parse(grant.data.expiresAt)).toBeLessThanOrEqual(Date.parse(run.deadline));
      const released = events.find((e) => e.type === 'LeaseReleased' && e.data.leaseId === grant.data.leaseId);
      expect(released?.sequence ?? 0).toBeGreaterThan(grant.sequence);
    }
  });

  it("fetch brings another clone's push into the agent's repository, which the agent can merge and build on", async () => {
    const remote = `${git.origin}/project.git`;
    const agent = (cwd: string, script: string) => h.host.exec(run.sandbox, { argv: ['sh', '-c', script], identity: 'agent', cwd });
    const g = "git -c safe.directory='*'";
    expect((await h.operate(run.bearer, { kind: 'git', action: 'clone', remote, secret: 'GIT_TOKEN', dir: 'second' })).json).toMatchObject({ ok: true });
    const committed = await agent('second', `echo two > TWO.md && ${g} add TWO.md && ${g} commit --quiet -m Two && ${g} rev-parse HEAD`);
    expect(committed.exitCode, committed.stderr).toBe(0);
    // No ref: HEAD's branch, resolved in the agent's repository.
    expect((await h.operate(run.bearer, { kind: 'git', action: 'push', remote, secret: 'GIT_TOKEN', dir: 'second' })).json).toMatchObject({ ok: true });
    expect(await git.revParse('project', 'main')).toBe(committed.stdout.trim());

    const fetched = await h.operate(run.bearer, { kind: 'git', action: 'fetch', remote, secret: 'GIT_TOKEN', dir: 'project', ref: 'main' });
    expect(fetched.json).toMatchObject({ ok: true });
    expect(String(fetched.json.stdout)).toContain(committed.stdout.trim());
    const merged = await agent('project', `${g} merge --quiet --ff-only FETCH_HEAD && echo three > THREE.md && ${g} add THREE.md && ${g} commit --quiet -m Three && ${g} rev-parse HEAD`);
    expect(merged.exitCode, merged.stderr).toBe(0);
    expect((await h.operate(run.bearer, { kind: 'git', action: 'push', remote, secret: 'GIT_TOKEN', dir: 'project', ref: 'main' })).json).toMatchObject({ ok: true });
    expect(await git.revParse('project', 'main')).toBe(merged.stdout.trim());
  });

  it('refuses a push to a host not in allowedHosts with 403 and an OperationRefused event; that server is never contacted', async () => {
    const before = (await h.runEvents(run)).length;
    const refused = await h.operate(run.bearer, { kind: 'git', action: 'push', remote: `${otherGit.origin}/project.git`, secret: 'GIT_TOKEN', dir: 'project', ref: 'HEAD:main' });
    expect(refused.status).toBe(403);
    expect(refused.headers['content-type']).toBe('application/problem+json');
    expect(refused.json.code).toBe('GATEWAY.HOST_NOT_ALLOWED');
    expect(otherGit.requests).toEqual([]);
    const added = (await h.runEvents(run)).slice(before);
    expect(added.map((e) => e.type)).toEqual(['OperationRefused']);
    expect(added[0]?.data).toMatchObject({ kind: 'git', target: `${otherGit.origin}/project.git` });
  });

  it('the allow-list is exact and port-aware: same host on another port, another name for it, an entry without the port', async () => {
    const gitPort = Number(new URL(git.origin).port);
    for (const remote of [`http://127.0.0.1:${gitPort + 1}/project.git`, `http://localhost:${gitPort}/project.git`, `http://127.0.0.1/project.git`]) {
      const refused = await h.operate(run.bearer, { kind: 'git', action: 'fetch', remote, secret: 'GIT_TOKEN', dir: 'project' });
      expect(refused.json.code, remote).toBe('GATEWAY.HOST_NOT_ALLOWED');
    }
    // An entry without a port allows the scheme's default port only, not the server's.
    await h.setSecret(ws, { name: 'PORTLESS_TOKEN', value: aSecretValue('pl'), allowedHosts: ['127.0.0.1'] });
    const portless = await h.operate(run.bearer, { kind: 'git', action: 'fetch', remote: `${git.origin}/project.git`, secret: 'PORTLESS_TOKEN', dir: 'project' });
    expect(portless.json.code).toBe('GATEWAY.HOST_NOT_ALLOWED');
    // A secret whose list is empty may go nowhere, not even to the host the others allow.
    await h.setSecret(ws, { name: 'NOWHERE_TOKEN', value: aSecretValue('nw'), allowedHosts: [] });
    const nowhere = await h.operate(run.bearer, { kind: 'git', action: 'fetch', remote: `${git.origin}/project.git`, secret: 'NOWHERE_TOKEN', dir: 'project' });
    expect(nowhere.json.code).toBe('GATEWAY.HOST_NOT_ALLOWED');
  });

  it("a hostile repository config cannot route the credential elsewhere (proxy, TLS, extra headers, URL rewrite)", async () => {
    const captured: string[] = [];
    const trap = http.createServer((req, res) => {
      captured.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''} ${req.headers['proxy-authorization'] ?? ''}`);
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Basic realm="trap"' });
      res.end();
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}`;
    try {
      const remote = `${git.origin}/project.git`;
      const hostile: Array<Array<[string, string]>> = [
        [['http.proxy', trapUrl]],
        [[`http.${remote}.proxy`, trapUrl]],
        [[`http.${remote}/.proxy`, trapUrl]],
        [[`remote.${remote}.proxy`, trapUrl]],
        [['http.sslVerify', 'false'], ['http.extraHeader', 'X-Trap: 1']],
        [[`url.${trapUrl}/.insteadOf`, `${git.origin}/`]],
        [[`url.${trapUrl}/.pushInsteadOf`, `${git.origin}/`]],
        // A rewrite to another path on the allowed host, with a proxy for exactly that URL.
        [[`url.${git.origin}/elsewhere.git.insteadOf`, remote], [`http.${git.origin}/elsewhere.git/.proxy`, trapUrl]],
        [[`remote.${remote}.pushurl`, `${git.origin}/elsewhere.git`], [`http.${git.origin}/elsewhere.git/.proxy`, trapUrl]],
      ];
      const basic = Buffer.from(`x-access-token:${secrets.GIT.value}`).toString('base64');
      const config = (args: string) => h.host.exec(run.sandbox, { argv: ['sh', '-c', `git -c safe.directory='*' config ${args}`], identity: 'agent', cwd: 'project' });
      for (const entries of hostile) {
        const label = entries.map(([k]) => k).join(' + ');
        for (const [key, value] of entries) expect((await config(`--add '${key}' '${value}'`)).exitCode, key).toBe(0);
        try {
          for (const action of ['push', 'fetch'] as const) {
            const reply = await h.operate(run.bearer, { kind: 'git', action, remote, secret: 'GIT_TOKEN', dir: 'project', ...(action === 'push' ? { ref: 'HEAD:main' } : {}) });
            expect(reply.status, label).toBe(200);
            // The repository's config is not read by the credential process: the operation goes where it was checked to go.
            expect(reply.json.ok, `${action} ${label}: ${JSON.stringify(reply.json)}`).toBe(true);
          }
          const leaked = captured.filter((line) => line.includes(basic) || line.includes(secrets.GIT.value));
          expect(leaked, label).toEqual([]);
        } finally {
          for (const [key] of entries) expect((await config(`--unset-all '${key}'`)).exitCode, key).toBe(0);
        }
      }
      expect(captured).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => trap.close(() => resolve()));
    }
  });

  it('a hostile repository cannot run code in the credential process (alternates with core.alternateRefsCommand)', async () => {
    const stolen = path.join(run.sandbox.workspace, 'stolen.txt');
    const plant = [
      "git init --quiet --bare ../alt.git",
      "mkdir -p .git/objects/info",
      `echo "$PWD/../alt.git/objects" > .git/objects/info/alternates`,
      `git -c safe.directory='*' config core.alternateRefsCommand 'cat "$HOME"/* > ${stolen} 2>&1; env >> ${stolen}; true'`,
    ].join(' && ');
    const planted = await h.host.exec(run.sandbox, { argv: ['sh', '-c', plant], identity: 'agent', cwd: 'project' });
    expect(planted.exitCode, planted.stderr).toBe(0);
    try {
      for (const action of ['fetch', 'push'] as const) {
        const reply = await h.operate(run.bearer, { kind: 'git', action, remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN', dir: 'project', ...(action === 'push' ? { ref: 'HEAD:main' } : {}) });
        expect(reply.status, action).toBe(200);
        expect(reply.json.ok, `${action}: ${JSON.stringify(reply.json)}`).toBe(true);
        expect(existsSync(stolen) ? readFileSync(stolen, 'utf8') : '', action).not.toContain(secrets.GIT.value);
      }
    } finally {
      await h.host.exec(run.sandbox, { argv: ['sh', '-c', "rm -rf ../alt.git .git/objects/info/alternates; git -c safe.directory='*' config --unset-all core.alternateRefsCommand"], identity: 'agent', cwd: 'project' });
    }
  });

  it('refuses commands the channel would not serve safely, and records each refusal', async () => {
    const before = (await h.runEvents(run)).length;
    for (const body of [
      { kind: 'git', action: 'push', remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN', dir: '../outside' },
      { kind: 'git', action: 'push', remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN', ref: '+main' },
      { kind: 'git', action: 'push', remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN', ref: '--receive-pack=sh' },
      { kind: 'git', action: 'clone', remote: `http://user:pw@${hostOf(git.origin)}/project.git`, secret: 'GIT_TOKEN' },
      { kind: 'git', action: 'clone', remote: `ext::sh -c id`, secret: 'GIT_TOKEN' },
      { kind: 'git', action: 'clone', remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN', runId: 'someone-else' },
    ]) {
      const refused = await h.operate(run.bearer, body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
    }
    const added = (await h.runEvents(run)).slice(before);
    expect(added.map((e) => e.type)).toEqual(Array(6).fill('OperationRefused'));
    expect(added.map((e) => (e.type === 'OperationRefused' ? e.data.kind : ''))).toEqual(['git', 'git', 'git', 'unparsed', 'unparsed', 'unparsed']);
  });
});

describe('POST /api/gateway/operations: git, while the agent writes the repository the credential process works on', () => {
  const remote = () => `${git.origin}/project.git`;
  const basicOf = (token: string) => Buffer.from(`x-access-token:${token}`).toString('base64');
  const leakedTo = (seen: readonly string[]) => seen.filter((line) => line.includes(basicOf(secrets.GIT.value)) || line.includes(secrets.GIT.value));

  it('a clone: config planted the moment git first asks the server (deterministic) gets no token and runs nothing', async () => {
    const trap = await startTrap();
    const { loot, signals } = attackDirs(run.sandbox.workspace, 'det');
    // Proxy, URL rewrite, credential helper, filter, fsmonitor and hooks, in whatever .git of the workspace exists.
    const planter = await startPlanter(h.host, run.sandbox, { trap: trap.url, origin: git.origin, loot, pattern: 'det-*/.git', signals, forms: 'all' });
    let held = false;
    onGitRequest = () => {
      if (held) return;
      held = true;
      holdUntilPlanted(signals);
    };
    try {
      const cloned = await h.operate(run.bearer, { kind: 'git', action: 'clone', remote: remote(), secret: 'GIT_TOKEN', dir: 'det-clone' });
      expect(held).toBe(true);
      expect(existsSync(path.join(signals, 'done'))).toBe(true);
      expect(cloned.json, cloned.text).toMatchObject({ ok: true, exitCode: 0 });
      expect(readFileSync(path.join(run.sandbox.workspace, 'det-clone', 'README.md'), 'utf8')).toBe('hello\n');
      expect(trap.seen).toEqual([]);
      expect(lootHolding(loot, secrets.GIT.value)).toEqual([]);
    } finally {
      onGitRequest = () => undefined;
      await planter.stop();
      await trap.close();
    }
  });

  it('a clone: a background writer racing 50 clones gets no token at its listener, and every clone works', { timeout: 300_000 }, async () => {
    const trap = await startTrap();
    const { loot } = attackDirs(run.sandbox.workspace, 'race');
    const planter = await startPlanter(h.host, run.sandbox, { trap: trap.url, origin: git.origin, loot, pattern: 'race-*/.git', forms: 'proxy' });
    try {
      for (let i = 0; i < 50; i++) {
        const cloned = await h.operate(run.bearer, { kind: 'git', action: 'clone', remote: remote(), secret: 'GIT_TOKEN', dir: `race-${i}` });
        expect(leakedTo(trap.seen), `clone ${i}`).toEqual([]);
        expect(cloned.json, `clone ${i}: ${cloned.text}`).toMatchObject({ ok: true, exitCode: 0 });
      }
      expect(trap.seen).toEqual([]);
      expect(lootHolding(loot, secrets.GIT.value)).toEqual([]);
    } finally {
      await planter.stop();
      await trap.close();
    }
  });

  it('push and fetch: the same config planted in the repository before the step gets no token and runs nothing', async () => {
    const trap = await startTrap();
    const { loot } = attackDirs(run.sandbox.workspace, 'repo');
    const cloned = await h.operate(run.bearer, { kind: 'git', action: 'clone', remote: remote(), secret: 'GIT_TOKEN', dir: 'planted' });
    expect(cloned.json).toMatchObject({ ok: true });
    const planter = await startPlanter(h.host, run.sandbox, { trap: trap.url, origin: git.origin, loot, pattern: 'planted/.git', forms: 'all' });
    const planted = path.join(run.sandbox.workspace, 'planted', '.git', 'config');
    for (let i = 0; i < 500 && !readFileSync(planted, 'utf8').includes(trap.url); i++) await new Promise((r) => setTimeout(r, 10));
    expect(readFileSync(planted, 'utf8')).toContain(trap.url);
    try {
      for (const action of ['fetch', 'push'] as const) {
        const reply = await h.operate(run.bearer, { kind: 'git', action, remote: remote(), secret: 'GIT_TOKEN', dir: 'planted', ...(action === 'push' ? { ref: 'HEAD:main' } : {}) });
        expect(reply.json.ok, `${action}: ${reply.text}`).toBe(true);
      }
      expect(trap.seen).toEqual([]);
      expect(lootHolding(loot, secrets.GIT.value)).toEqual([]);
    } finally {
      await planter.stop();
      await trap.close();
    }
  });
});

describe('POST /api/gateway/operations: http', () => {
  it('injects the header from the platform process and redacts the echoed token, raw and encoded', async () => {
    const reply = await h.operate(run.bearer, { kind: 'http', method: 'GET', url: `${api.origin}/whoami?x=1`, secret: 'API_TOKEN', headers: { 'X-Custom': 'yes' } });
    expect(reply.status, reply.text).toBe(200);
    expect(reply.json).toMatchObject({ ok: true, status: 200 });
    expect(api.seen.at(-1)).toMatchObject({ url: '/whoami?x=1', authorization: `Bearer ${secrets.API.value}`, custom: 'yes' });
    const echoed = JSON.parse(String(reply.json.body)) as { ok: boolean; got: string; base64: string };
    expect(echoed.ok).toBe(true);
    expect(echoed.got).toBe('Bearer [REDACTED:API_TOKEN]');
    expect(echoed.base64).toContain('[REDACTED:API_TOKEN]');
    expect(scanTexts([{ where: 'reply', text: reply.text }], { API_TOKEN: secrets.API.value })).toEqual([]);
    const grant = (await h.runEvents(run)).filter((e) => e.type === 'LeaseGranted').at(-1);
    expect(grant?.data).toMatchObject({ secretName: 'API_TOKEN', channel: 'gateway-header', operation: 'gateway:http:GET' });
  });

  it('cuts a long response after redaction: a value the read limit splits never comes back, not even its start', async () => {
    const small = h.gatewayWith({ maxHttpResponseBytes: 200 });
    // "Bearer " is 7 bytes: with n between 190 and 199 the limit falls inside the token.
    for (const n of [150, 185, 190, 195, 199]) {
      const reply = await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/padded?n=${n}`, secret: 'API_TOKEN' }, {}, small);
      expect(reply.json.truncated, String(n)).toBe(true);
      const body = String(reply.json.body);
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(200);
      expect(body.startsWith('x'.repeat(Math.min(n, 150)))).toBe(true);
      for (let len = 4; len <= secrets.API.value.length; len++) expect(body, `n=${n} len=${len}`).not.toContain(secrets.API.value.slice(0, len));
    }
  });

  it('parallel operations of one run all complete, each with its own lease granted and released', async () => {
    const replies = await Promise.all([1, 2, 3, 4, 5].map((i) => h.operate(run.bearer, { kind: 'http', url: `${api.origin}/parallel/${i}`, secret: 'API_TOKEN' })));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const events = await h.runEvents(run);
    for (const reply of replies) {
      const id = String(reply.json.operationId);
      const mine = events.filter((e) => ('operationId' in e.data && e.data.operationId === id) || ('leaseId' in e.data && e.data.leaseId === `${id}:lease`));
      expect(mine.map((e) => e.type)).toEqual(['OperationRequested', 'LeaseGranted', 'LeaseReleased', 'OperationCompleted']);
    }
  });

  it("a gateway lease shows in the run's status projection while the operation runs (what the sweep reads), and leaves it after", async () => {
    let release: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => {
      slow.onRequest = () => resolve();
    });
    slow.hold = new Promise<void>((resolve) => (release = resolve));
    const pending = h.operate(run.bearer, { kind: 'http', url: `${slow.origin}/held`, secret: 'SLOW_TOKEN' });
    await arrived;
    const during = await h.api.store.readProjection(ws, projectionKeys.run(run.runId));
    expect(during?.activeLeases).toEqual([expect.objectContaining({ secretName: 'SLOW_TOKEN', channel: 'gateway-header' })]);
    release();
    expect((await pending).status).toBe(200);
    const after = await h.api.store.readProjection(ws, projectionKeys.run(run.runId));
    expect(after?.activeLeases).toEqual([]);
  });

  it('does not follow a redirect to another host', async () => {
    const before = elsewhere.seen.length;
    const reply = await h.operate(run.bearer, { kind: 'http', method: 'GET', url: `${api.origin}/redirect`, secret: 'API_TOKEN' });
    expect(reply.json).toMatchObject({ ok: false, status: 302 });
    expect((reply.json.headers as Record<string, string>).location).toBe(`${elsewhere.origin}/stolen`);
    expect(elsewhere.seen.length).toBe(before);
  });

  it('refuses a url whose host is not allowed for the secret, and a header the gateway owns', async () => {
    const refused = await h.operate(run.bearer, { kind: 'http', method: 'POST', url: `${elsewhere.origin}/collect`, secret: 'API_TOKEN', body: 'x' });
    expect(refused.status).toBe(403);
    expect(refused.json.code).toBe('GATEWAY.HOST_NOT_ALLOWED');
    expect(elsewhere.seen).toEqual([]);
    const hostHeader = await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/`, secret: 'API_TOKEN', headers: { Host: hostOf(elsewhere.origin) } });
    expect(hostHeader.status).toBe(400);
  });

  it("refuses an operation whose use the secret's owner did not allow (403 naming secret and use), before anything is sent", async () => {
    await h.setSecret(ws, { name: 'GIT_ONLY_TOKEN', value: aSecretValue('go'), allowedHosts: [hostOf(api.origin)], uses: { git: 'members' } });
    const before = api.seen.length;
    const refused = await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/whoami`, secret: 'GIT_ONLY_TOKEN' });
    expect(refused.status).toBe(403);
    expect(refused.json.code).toBe('SECRET.USE_NOT_ALLOWED');
    expect(String(refused.json.detail)).toMatch(/GIT_ONLY_TOKEN.*"http"/);
    expect(api.seen.length).toBe(before);
    const last = (await h.runEvents(run)).at(-1);
    expect(last?.type).toBe('OperationRefused');
    await h.setSecret(ws, { name: 'GIT_ONLY_TOKEN', value: aSecretValue('go'), allowedHosts: [hostOf(api.origin)], uses: { http: 'owners' } });
    expect((await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/whoami`, secret: 'GIT_ONLY_TOKEN' })).status).toBe(200);
  });

  it("a use limited to owners refuses a member's run, and a member removed mid-run loses even a members' use", async () => {
    expect((await h.api.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: h.owner, body: { role: 'member' } })).status).toBe(200);
    await h.setSecret(ws, { name: 'OWNERS_TOKEN', value: aSecretValue('ow'), allowedHosts: [hostOf(api.origin)], uses: { http: 'owners' } });
    const bobs = await h.launch(ws, Object.values(secrets), {}, 'bob');
    try {
      const before = api.seen.length;
      const refused = await h.operate(bobs.bearer, { kind: 'http', url: `${api.origin}/whoami`, secret: 'OWNERS_TOKEN' });
      expect(refused.status).toBe(403);
      expect(refused.json.code).toBe('SECRET.USE_EXCLUDES_CALLER');
      expect(String(refused.json.detail)).toMatch(/OWNERS_TOKEN.*"http".*owners.*bob/);
      expect((await h.operate(bobs.bearer, { kind: 'http', url: `${api.origin}/whoami`, secret: 'API_TOKEN' })).status).toBe(200);
      expect((await h.api.call('DELETE', `/api/workspaces/${ws}/members/bob`, { token: h.owner })).status).toBe(204);
      const removed = await h.operate(bobs.bearer, { kind: 'http', url: `${api.origin}/whoami`, secret: 'API_TOKEN' });
      expect(removed.status).toBe(403);
      expect(removed.json.code).toBe('SECRET.USE_EXCLUDES_CALLER');
      expect(api.seen.length).toBe(before + 1);
    } finally {
      await h.teardown(bobs);
    }
  });

  it('a value rotated after the sandbox started is resolved at the moment of use and still redacted', async () => {
    const rotated = aSecretValue('api2');
    await h.setSecret(ws, { name: 'API_TOKEN', value: rotated, allowedHosts: [api.hostPort] });
    const reply = await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/whoami`, secret: 'API_TOKEN' });
    expect(api.seen.at(-1)?.authorization).toBe(`Bearer ${rotated}`);
    expect(reply.text).not.toContain(rotated);
    expect(reply.text).toContain('[REDACTED:API_TOKEN]');
    await h.setSecret(ws, secrets.API);
  });
});

describe('POST /api/gateway/operations: npm-install', () => {
  it('installs from the registry with the token in a scoped config, then runs scripts without it', async () => {
    const reply = await h.operate(run.bearer, { kind: 'npm-install', registry: registry.origin, secret: 'NPM_TOKEN', args: [registry.packageName, '--no-audit', '--no-fund'] });
    expect(reply.status, reply.text).toBe(200);
    expect(reply.json).toMatchObject({ ok: true, exitCode: 0 });
    expect(existsSync(path.join(run.sandbox.workspace, 'node_modules', registry.packageName, 'package.json'))).toBe(true);
    const marker = JSON.parse(readFileSync(path.join(run.sandbox.workspace, 'install-marker.json'), 'utf8')) as { userconfigHasAuthToken: boolean };
    expect(marker.userconfigHasAuthToken).toBe(false);
    expect(registry.requests.length).toBeGreaterThan(0);
    expect(registry.requests.every((r) => r.authorized)).toBe(true);
    expect(registry.leaks).toEqual([]);
  });

  it("a hostile project .npmrc cannot route the token through a proxy or run a program in the credential process", async () => {
    const captured: string[] = [];
    const trap = http.createServer((req, res) => {
      captured.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
      req.resume();
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}`;
    const stolen = path.join(run.sandbox.workspace, 'hostile', 'stolen.txt');
    const evil = `#!/bin/sh\ncat "$HOME"/* "$npm_config_userconfig" > ${stolen} 2>&1\nexit 1\n`;
    const files = {
      '.npmrc': `proxy=${trapUrl}\nhttps-proxy=${trapUrl}\nnoproxy=\nstrict-ssl=false\ngit=${path.join(run.sandbox.workspace, 'hostile', 'evil.sh')}\n`,
      'package.json': JSON.stringify({ name: 'hostile', version: '1.0.0', private: true, dependencies: { [registry.packageName]: registry.version, gitdep: 'git+http://127.0.0.1:9/x.git' } }),
      'evil.sh': evil,
    };
    const script = ['mkdir -p hostile', ...Object.entries(files).map(([name, content]) => `printf '%s' '${content.replaceAll("'", "'\\''")}' > hostile/${name}`), 'chmod 755 hostile/evil.sh'].join(' && ');
    const planted = await h.host.exec(run.sandbox, { argv: ['sh', '-c', script], identity: 'agent' });
    expect(planted.exitCode, planted.stderr).toBe(0);
    const before = registry.requests.length;
    try {
      await h.operate(run.bearer, { kind: 'npm-install', registry: registry.origin, secret: 'NPM_TOKEN', dir: 'hostile', args: ['--no-audit', '--no-fund'] });
      await h.operate(run.bearer, { kind: 'npm-install', registry: registry.origin, secret: 'NPM_TOKEN', dir: 'hostile', args: [registry.packageName, '--no-audit', '--no-fund'] });
      expect(captured.filter((line) => line.includes(secrets.NPM.value))).toEqual([]);
      expect(captured).toEqual([]);
      // npm went to the registry itself, with the token, despite the project's proxy.
      expect(registry.requests.slice(before).some((r) => r.authorized)).toBe(true);
      // The git dependency was refused, so the program the .npmrc named never ran.
      expect(existsSync(stolen)).toBe(false);
    } finally {
      await new Promise<void>((resolve) => trap.close(() => resolve()));
    }
  });

  it('refuses flags that would change the registry, config or scripts', async () => {
    for (const args of [['--registry=http://127.0.0.1:1/'], ['--userconfig=/tmp/x'], ['git+https://example.com/x.git'], ['file:../x']]) {
      const refused = await h.operate(run.bearer, { kind: 'npm-install', registry: registry.origin, secret: 'NPM_TOKEN', args });
      expect(refused.status, args.join(' ')).toBe(400);
    }
  });
});

describe('POST /api/gateway/operations: who may call', () => {
  it('a forged, missing or malformed bearer gets 401 with a Bearer challenge, and nothing is recorded anywhere', async () => {
    const before = (await h.runEvents(run)).length;
    const counted = h.gateway.unauthenticated;
    const forged = run.bearer.slice(0, -2) + (run.bearer.endsWith('AA') ? 'BB' : 'AA');
    for (const bearer of [forged, undefined, 'not a bearer', `${run.bearer}x`]) {
      const reply = await h.operate(bearer, { kind: 'git', action: 'fetch', remote: `${git.origin}/project.git`, secret: 'GIT_TOKEN', dir: 'project' });
      expect(reply.status).toBe(401);
      expect(reply.headers['www-authenticate']).toMatch(/^Bearer /);
      expect(reply.json.code).toMatch(/^GATEWAY\./);
    }
    // A user's API token is not a gateway bearer either.
    expect((await h.operate(h.owner, { kind: 'http', url: `${api.origin}/`, secret: 'API_TOKEN' })).status).toBe(401);
    expect(h.gateway.unauthenticated).toBe(counted + 5);
    expect((await h.runEvents(run)).length).toBe(before);
  });

  it("another run's bearer acts only on its own run: its workspace's secrets, its sandbox, its stream", async () => {
    const theirWs = await h.workspace('Other', [{ name: 'OTHER_TOKEN', value: aSecretValue('oth'), allowedHosts: [api.hostPort] }]);
    const theirs = await h.launch(theirWs, []);
    const mineBefore = (await h.runEvents(run)).length;
    const reply = await h.operate(theirs.bearer, { kind: 'http', url: `${api.origin}/`, secret: 'API_TOKEN' });
    expect(reply.status).toBe(404);
    expect(reply.json.code).toBe('GATEWAY.SECRET_NOT_FOUND');
    expect((await h.runEvents(run)).length).toBe(mineBefore);
    expect((await h.runEvents(theirs)).map((e) => e.type)).toEqual(['RunRequested', 'OperationRefused']);
    // Our bearer cannot reach their secret.
    const mine = await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/`, secret: 'OTHER_TOKEN' });
    expect(mine.json.code).toBe('GATEWAY.SECRET_NOT_FOUND');
  });

  it('a bearer minted for an earlier container of the run does not work for its new one', async () => {
    const second = await h.launch(ws, Object.values(secrets));
    const stale = await h.bearers.mint({ workspaceId: ws, runId: second.runId, containerId: 'an-earlier-container', expiresAt: second.deadline });
    const reply = await h.operate(stale, { kind: 'http', url: `${api.origin}/`, secret: 'API_TOKEN' });
    expect(reply.status).toBe(410);
    expect(reply.json.code).toBe('GATEWAY.SANDBOX_GONE');
  });

  it('after teardown the bearer is dead: 401 revoked; a live bearer whose sandbox is gone gets 410', async () => {
    const doomed = await h.launch(ws, Object.values(secrets));
    expect((await h.operate(doomed.bearer, { kind: 'http', url: `${api.origin}/`, secret: 'API_TOKEN' })).status).toBe(200);
    h.sandboxes.remove(doomed.runId);
    const gone = await h.operate(doomed.bearer, { kind: 'http', url: `${api.origin}/`, secret: 'API_TOKEN' });
    expect(gone.status).toBe(410);
    await h.teardown(doomed);
    const revoked = await h.operate(doomed.bearer, { kind: 'http', url: `${api.origin}/`, secret: 'API_TOKEN' });
    expect(revoked.status).toBe(401);
    expect(revoked.json.code).toBe('GATEWAY.BEARER_REVOKED');
  });

  it('no stored row holds a bearer or a secret value', async () => {
    const texts = [...(await tableTexts(h.api.eventTable)), ...(await tableTexts(h.bearerTable)), ...(await tableTexts(h.api.vaultTable))];
    expect(texts.length).toBeGreaterThan(10);
    expect(scanTexts(texts, { BEARER: run.bearer })).toEqual([]);
    const eventTexts = [...(await tableTexts(h.api.eventTable)), ...(await tableTexts(h.bearerTable))];
    expect(scanTexts(eventTexts, Object.fromEntries(Object.values(secrets).map((s) => [s.name, s.value])))).toEqual([]);
  });
});
