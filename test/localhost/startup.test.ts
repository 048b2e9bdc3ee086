import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../localhost/azuriteProcess';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { runLocalHostToExit, startLocalHost } from '../support/localHostProcess';

const APP = 'test/fixtures/apps/basic';

async function occupy(): Promise<{ server: Server; port: number }> {
  const port = await freeLoopbackPort();
  const server = createServer();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return { server, port };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** A start-up failure must be one readable line naming the problem, not a stack trace. */
function expectOneLine(stderr: string, ...fragments: string[]): void {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('npm warn'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^npm start: /);
  for (const f of fragments) expect(lines[0]).toContain(f);
  expect(stderr).not.toMatch(/^\s+at /m);
}

describe('npm start: embedded Azurite, banner, clean shutdown', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'local-host-start-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('starts Azurite on the configured loopback ports with data on disk, serves the app, and stops both on SIGINT', async () => {
    const ports = { blob: await freeLoopbackPort(), queue: await freeLoopbackPort(), table: await freeLoopbackPort() };
    const host = await startLocalHost({
      via: 'npm-start',
      app: APP,
      args: ['--no-extensions'],
      env: {
        AzureWebJobsStorage: 'UseDevelopmentStorage=true',
        AZURITE_BLOB_PORT: String(ports.blob),
        AZURITE_QUEUE_PORT: String(ports.queue),
        AZURITE_TABLE_PORT: String(ports.table),
        AZURITE_LOCATION: path.join(tmp, 'azurite'),
        DEV_ISSUER_KEY_DIR: path.join(tmp, 'issuer'),
        FIXTURE_QUEUE: uniqueName('startq'),
      },
    });
    try {
      expect(host.stdout()).toContain(`Storage: embedded Azurite on 127.0.0.1:${ports.blob}`);
      expect(host.stdout()).toContain(`API: ${host.url}/api`);
      expect(host.stdout()).toContain(`state: [GET] ${host.url}/api/state`);
      for (const port of Object.values(ports)) expect(await listening(port)).toBe(true);
      expect((await fetch(`${host.url}/api/state`)).status).toBe(200);
      // Data persists under the configured folder, not in memory.
      expect(readdirSync(path.join(tmp, 'azurite')).length).toBeGreaterThan(0);
    } finally {
      expect(await host.stop('SIGINT')).toBe(0);
    }
    expect(host.stdout()).toContain('SIGINT: stopping the host and Azurite');
    for (const port of Object.values(ports)) expect(await listening(port)).toBe(false);
    expect(await listening(host.port)).toBe(false);
  });
});

describe('npm start: one clear line when it cannot start', () => {
  const storage = (): Record<string, string> => ({ AzureWebJobsStorage: azuriteConnectionString(), FIXTURE_QUEUE: uniqueName('failq') });

  it('names the HTTP port when it is taken', async () => {
    const { server, port } = await occupy();
    try {
      const result = await runLocalHostToExit({ app: APP, args: ['--no-extensions'], env: { ...storage(), LOCAL_HOST_PORT: String(port) } });
      expect(result.code).toBe(1);
      expectOneLine(result.stderr, `Port ${port}`, 'in use', 'LOCAL_HOST_PORT');
    } finally {
      server.close();
    }
  });

  it('names the Azurite port when it is taken', async () => {
    const { server, port } = await occupy();
    try {
      const result = await runLocalHostToExit({
        app: APP,
        args: ['--no-extensions'],
        env: { AzureWebJobsStorage: 'UseDevelopmentStorage=true', AZURITE_BLOB_PORT: String(port), FIXTURE_QUEUE: 'unused' },
      });
      expect(result.code).toBe(1);
      expectOneLine(result.stderr, `Port ${port} (Azurite blob)`, 'AZURITE_BLOB_PORT');
    } finally {
      server.close();
    }
  });

  it('names a malformed setting', async () => {
    const result = await runLocalHostToExit({ app: APP, env: { ...storage(), LOCAL_HOST_PORT: 'seventy' } });
    expect(result.code).toBe(1);
    expectOneLine(result.stderr, 'LOCAL_HOST_PORT', 'port number');
  });

  it('names a missing storage setting', async () => {
    const result = await runLocalHostToExit({ app: APP, env: { AzureWebJobsStorage: undefined, FIXTURE_QUEUE: 'unused' } });
    expect(result.code).toBe(1);
    expectOneLine(result.stderr, 'AzureWebJobsStorage', 'required');
  });

  it('falls back to local.settings.sample.json and names the malformed value in it', async () => {
    const result = await runLocalHostToExit({ app: 'test/fixtures/apps/badsettings' });
    expect(result.code).toBe(1);
    expectOneLine(result.stderr, 'local.settings.sample.json', 'Values.MAX_WIDGETS');
  });

  it('names a %SETTING% a binding refers to that is not set', async () => {
    const result = await runLocalHostToExit({ app: APP, args: ['--no-extensions'], env: { AzureWebJobsStorage: azuriteConnectionString(), FIXTURE_QUEUE: undefined } });
    expect(result.code).toBe(1);
    expectOneLine(result.stderr, 'FIXTURE_QUEUE');
  });

  it('rejects an unknown option with usage', async () => {
    const result = await runLocalHostToExit({ app: APP, args: ['--frobnicate'], env: storage() });
    expect(result.code).toBe(1);
    expectOneLine(result.stderr, '--frobnicate', 'Usage');
  });
});
