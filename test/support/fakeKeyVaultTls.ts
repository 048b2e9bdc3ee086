import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import type { LookupFunction } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';

/** The fake's DNS zone. Real vaults are `{name}.vault.azure.net`; ours resolve only inside the test agent. */
export const FAKE_DOMAIN = 'azure.test';
export const FAKE_VAULT_SUFFIX = `vault.${FAKE_DOMAIN}`;
export const FAKE_ARM_HOST = `management.${FAKE_DOMAIN}`;

export interface TestTls {
  readonly cert: string;
  readonly key: string;
}

/**
 * A throwaway self-signed certificate for the fake's names, made with the openssl CLI (Node cannot issue
 * X.509 certificates itself). Test-only: it lives in a temp dir for one test process and nothing but the
 * agent below trusts it.
 */
export function makeTestTls(): TestTls {
  const dir = mkdtempSync(path.join(tmpdir(), 'fake-kv-tls-'));
  try {
    const [keyFile, certFile] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', '/CN=fake-key-vault.test', '-keyout', keyFile, '-out', certFile,
      '-addext', `subjectAltName=DNS:*.${FAKE_VAULT_SUFFIX},DNS:${FAKE_VAULT_SUFFIX},DNS:${FAKE_ARM_HOST}`,
    ], { stdio: 'ignore' });
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * An HTTPS agent that trusts only the test certificate and resolves the fake's names to loopback;
 * `resolves(host)` lets the fake make a deleted vault's name vanish from DNS, as Azure does.
 */
export function fakeAgent(tls: TestTls, resolves: (host: string) => boolean): Agent {
  const lookup = ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (!hostname.endsWith(`.${FAKE_DOMAIN}`) || !resolves(hostname)) {
      const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
      callback(error);
      return;
    }
    if (options?.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
  }) as unknown as LookupFunction;
  return new Agent({ ca: tls.cert, lookup, keepAlive: true });
}

/** A pipeline policy that sends every SDK request through `agent` (core-rest-pipeline honours request.agent). */
export function agentPolicy(agent: Agent): PipelinePolicy {
  return {
    name: 'fakeKeyVaultAgent',
    sendRequest: (request, next) => {
      // Non-enumerable: the SDK's logging policy serialises the request, and an agent with live sockets is huge.
      Object.defineProperty(request, 'agent', { value: agent, enumerable: false, configurable: true, writable: true });
      return next(request);
    },
  };
}

/**
 * Stands in for DefaultAzureCredential: the token names the scope it was issued for, so the fake can refuse a
 * token meant for another audience, as Entra ID tokens would be refused.
 */
export class FakeTokenCredential implements TokenCredential {
  readonly requestedScopes: string[] = [];

  async getToken(scopes: string | string[]): Promise<AccessToken> {
    const scope = Array.isArray(scopes) ? scopes.join(' ') : scopes;
    this.requestedScopes.push(scope);
    return { token: `fake-token:${scope}`, expiresOnTimestamp: Date.now() + 3600_000 };
  }
}
