import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../support/localHostProcess';

const DEFAULT_LIMIT = 1024 * 1024 + 64 * 1024;

describe('local host: HTTP triggers (child process, fixture app)', () => {
  let host: LocalHostProcess;
  let keyDir: string;

  beforeAll(async () => {
    keyDir = mkdtempSync(path.join(tmpdir(), 'dev-issuer-'));
    host = await startLocalHost({
      app: 'test/fixtures/apps/basic',
      env: { AzureWebJobsStorage: azuriteConnectionString(), FIXTURE_QUEUE: uniqueName('httpq'), DEV_ISSUER_KEY_DIR: keyDir, AUTH_MODE: 'dev' },
      args: ['--no-extensions'],
    });
  });

  afterAll(async () => {
    const code = await host?.stop('SIGTERM');
    expect(code).toBe(0);
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('prints the API URL, every function with its methods and route, and a dev token', () => {
    const out = host.stdout();
    expect(out).toContain(`API: ${host.url}/api`);
    expect(out).toContain(`echo: [GET,POST,PUT] ${host.url}/api/echo/{ws}/items/{id:int}/{tail?}`);
    expect(out).toContain(`defaultRoute: [GET] ${host.url}/api/defaultRoute`);
    expect(out).toContain('everySecond: timerTrigger (*/1 * * * * *)');
    expect(out).toMatch(/work: queueTrigger/);
    expect(out).toMatch(/Dev token for dev-user[^\n]*\n {2}[\w-]+\.[\w-]+\.[\w-]+\n/);
  });

  it('passes route parameters, optional parameters, repeated query values, headers and the raw body', async () => {
    const body = Buffer.from([0x00, 0xff, 0x10, 0x7f]);
    const res = await fetch(`${host.url}/api/echo/ws-1/items/42/extra?tag=a&tag=b&x=1`, {
      method: 'POST',
      headers: { 'x-test': 'hello', 'content-type': 'application/octet-stream' },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-function')).toBe('echo');
    expect(await res.json()).toMatchObject({
      method: 'POST',
      params: { ws: 'ws-1', id: '42', tail: 'extra' },
      tags: ['a', 'b'],
      header: 'hello',
      contentType: 'application/octet-stream',
      bodyBytes: 4,
      bodyHex: '00ff107f',
    });

    const withoutOptional = await fetch(`${host.url}/api/ECHO/ws%2F2/items/7`);
    expect(await withoutOptional.json()).toMatchObject({ method: 'GET', params: { ws: 'ws/2', id: '7' } });
  });

  it('honours inline constraints: a non-integer id falls through to the route that accepts it', async () => {
    const res = await fetch(`${host.url}/api/echo/w/items/widget`);
    expect(await res.json()).toEqual({ byName: 'widget' });
    const neither = await fetch(`${host.url}/api/echo/w/items/12ab`);
    expect(neither.status).toBe(404);
  });

  it('uses the function name as the route when none is given, and answers 404 problem+json for unknown routes and methods', async () => {
    expect(await (await fetch(`${host.url}/api/defaultRoute`)).text()).toBe('route defaults to the function name');
    for (const [method, url] of [['GET', `${host.url}/api/nope`], ['DELETE', `${host.url}/api/echo/w/items/1`], ['GET', `${host.url}/echo/w/items/1`]] as const) {
      const res = await fetch(url, { method });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await res.json()).toMatchObject({ status: 404, code: 'HOST.NOT_FOUND' });
    }
  });

  it("refuses '.' and '..' segments, plain or percent-encoded, instead of resolving them (DELETE .../secrets/.. is not DELETE of the workspace)", async () => {
    // fetch would resolve them itself; a raw request sends the path as written, as any client may.
    const raw = (target: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${host.url}/`, { method: 'DELETE', path: target }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    for (const target of ['/api/echo/w/items/..', '/api/echo/w/items/%2e%2e', '/api/echo/w/items/%2E', '/api/./defaultRoute', '/api/echo/w/items/.%2e?x=1']) {
      const reply = await raw(target);
      expect(reply.status, target).toBe(400);
      expect(JSON.parse(reply.body)).toMatchObject({ code: 'HOST.BAD_PATH' });
    }
    expect((await raw('/api/echo/w/items/a..b')).status).not.toBe(400);
  });

  it('answers a throwing handler with 500 problem+json that carries neither the message nor a stack trace', async () => {
    const res = await fetch(`${host.url}/api/boom`);
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ status: 500, title: 'Internal Server Error', code: 'HOST.FUNCTION_FAILED' });
    expect(text).not.toContain('kaboom');
    expect(text).not.toMatch(/\bat .*\.js:\d+/);
    expect(text).not.toContain('fixtures');
    // The developer still sees what failed, on the host's own output.
    expect(host.stderr()).toContain('kaboom');
  });

  it('accepts a body at the limit and refuses one over it with 413 problem+json', async () => {
    const atLimit = await fetch(`${host.url}/api/upload`, { method: 'POST', body: Buffer.alloc(DEFAULT_LIMIT, 1) });
    expect(atLimit.status).toBe(201);
    expect(await atLimit.json()).toEqual({ bytes: DEFAULT_LIMIT });

    const over = await fetch(`${host.url}/api/upload`, { method: 'POST', body: Buffer.alloc(DEFAULT_LIMIT + 1, 1) });
    expect(over.status).toBe(413);
    expect(over.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await over.json()).toMatchObject({ status: 413, code: 'HOST.PAYLOAD_TOO_LARGE' });
  });

  it('counts a chunked body without a content-length against the limit too', async () => {
    const chunk = Buffer.alloc(256 * 1024, 2);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > DEFAULT_LIMIT) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${host.url}/api/upload`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: 'HOST.PAYLOAD_TOO_LARGE' });
  });

  it('answers an undefined result with 204 and serialises cookies', async () => {
    expect((await fetch(`${host.url}/api/nothing`)).status).toBe(204);
    const res = await fetch(`${host.url}/api/cookie`);
    expect(res.headers.get('set-cookie')).toBe('session=abc; Path=/; HttpOnly');
  });

  it('runs appStart before serving and preInvocation hooks around invocations', async () => {
    const state = (await (await fetch(`${host.url}/api/state`)).json()) as { appStarted: boolean; preInvocations: number };
    expect(state.appStarted).toBe(true);
    expect(state.preInvocations).toBeGreaterThan(0);
  });
});

describe('local host: malformed requests', () => {
  let host: LocalHostProcess;
  const keyDir = mkdtempSync(path.join(tmpdir(), 'dev-issuer-'));
  beforeAll(async () => {
    host = await startLocalHost({
      app: 'test/fixtures/apps/basic',
      env: { AzureWebJobsStorage: azuriteConnectionString(), FIXTURE_QUEUE: uniqueName('badq'), DEV_ISSUER_KEY_DIR: keyDir },
      args: ['--no-extensions'],
    });
  });
  afterAll(async () => {
    await host?.stop();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('answers a malformed Host header or percent-encoding with 400 problem+json and keeps serving', async () => {
    const { request } = await import('node:http');
    const raw = (path: string, hostHeader: string): Promise<{ status: number; type: string | undefined }> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: host.port, path, headers: { host: hostHeader } }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] });
        });
        req.on('error', reject);
        req.end();
      });
    expect(await raw('/api/state', 'bad host with spaces')).toMatchObject({ status: 400, type: expect.stringMatching(/problem\+json/) });
    expect(await raw('/api/echo/%E0%A4%A/items/1', `127.0.0.1:${host.port}`)).toMatchObject({ status: 400 });
    expect((await fetch(`${host.url}/api/state`)).status).toBe(200);
  });
});
