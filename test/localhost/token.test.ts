import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { runScript, startLocalHost, type LocalHostProcess } from '../support/localHostProcess';

describe('npm run token and the host-served dev issuer keys', () => {
  let keyDir: string;
  let host: LocalHostProcess;

  beforeAll(async () => {
    keyDir = path.join(mkdtempSync(path.join(tmpdir(), 'dev-issuer-')), 'keys');
    host = await startLocalHost({
      app: 'test/fixtures/apps/basic',
      args: ['--no-extensions'],
      env: { AzureWebJobsStorage: azuriteConnectionString(), FIXTURE_QUEUE: uniqueName('tokq'), DEV_ISSUER_KEY_DIR: keyDir, AUTH_MODE: 'dev' },
    });
  });
  afterAll(async () => {
    await host?.stop();
    rmSync(path.dirname(keyDir), { recursive: true, force: true });
  });

  it('prints only a JWT for the user, verifiable with the JWKS the running host serves', async () => {
    const result = await runScript('token.js', ['alice'], { DEV_ISSUER_KEY_DIR: keyDir });
    expect(result.code).toBe(0);
    const token = result.stdout.trim();
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const discovery = (await (await fetch(`${host.url}/dev-issuer/.well-known/openid-configuration`)).json()) as { issuer: string };
    const jwks = (await (await fetch(`${host.url}/dev-issuer/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: discovery.issuer, audience: 'api://disco-parrot' });
    expect(payload.sub).toBe('alice');
  });

  it('refuses in the production configuration, printing no token', async () => {
    const result = await runScript('token.js', ['alice'], { DEV_ISSUER_KEY_DIR: keyDir, DISCO_ENV: 'production' });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/refused in the production configuration/);
  });

  it('prints usage without a user', async () => {
    const result = await runScript('token.js', []);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('Usage: npm run token -- <user>');
  });
});
