import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNumericTrick, refusedAddressClass } from '../../../../infra/sandbox/egress/addressPolicy';
import { decideEgress, startEgressProxy, type EgressProxy } from '../../../../infra/sandbox/egress/egressProxy';

/** A resolver that answers from a table, so every address class can be tried without a DNS server. */
const answers: Record<string, string[]> = {
  'public.example': ['93.184.216.34'],
  'internal.example': ['10.0.0.5'],
  'mixed.example': ['93.184.216.34', '127.0.0.1'],
  'metadata.example': ['169.254.169.254'],
  'mapped.example': ['::ffff:127.0.0.1'],
  'v6loop.example': ['::1'],
};
const resolve = async (host: string): Promise<string[]> => {
  const found = answers[host];
  if (!found) throw new Error('ENOTFOUND');
  return found;
};

describe('the egress decision', () => {
  it.each([
    ['127.0.0.1', 'loopback'], ['127.45.6.7', 'loopback'], ['::1', 'loopback'],
    ['10.1.2.3', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'], ['100.64.0.1', 'private'], ['fd00::1', 'private'], ['fc00::5', 'private'],
    ['169.254.10.10', 'link-local'], ['fe80::1', 'link-local'],
    ['169.254.169.254', 'metadata'], ['168.63.129.16', 'metadata'],
    ['::ffff:127.0.0.1', 'ipv4-mapped'], ['::ffff:7f00:1', 'ipv4-mapped'], ['::ffff:a9fe:a9fe', 'ipv4-mapped'], ['::127.0.0.1', 'ipv4-compatible'],
    ['64:ff9b::a9fe:a9fe', 'nat64'], ['2002:7f00:1::', '6to4'],
    ['0.0.0.0', 'unspecified'], ['::', 'unspecified'], ['224.0.0.1', 'multicast'], ['ff02::1', 'multicast'], ['255.255.255.255', 'broadcast'],
  ])('refuses %s (%s)', (address, why) => {
    expect(refusedAddressClass(address)).toBe(why);
  });

  it('allows public unicast addresses', () => {
    for (const address of ['93.184.216.34', '140.82.112.3', '2606:4700::6810:84e5', '172.32.0.1', '11.0.0.1']) expect(refusedAddressClass(address), address).toBeUndefined();
  });

  it('refuses numeric-host tricks outright', () => {
    for (const host of ['2130706433', '0x7f000001', '0x7f.1', '0177.0.0.1', '127.1', '127.0.1', '017700000001', '0x7F.0.0.1']) expect(isNumericTrick(host), host).toBe(true);
    for (const host of ['127.0.0.1', 'registry.npmjs.org', '1password.com', 'deadbeef.example']) expect(isNumericTrick(host), host).toBe(false);
  });

  it('resolves names itself: any refused answer refuses the name; the checked address is the one used', async () => {
    expect(await decideEgress('public.example', 443, {}, resolve)).toEqual({ ok: true, address: '93.184.216.34' });
    for (const host of ['internal.example', 'mixed.example', 'metadata.example', 'mapped.example', 'v6loop.example'])
      expect((await decideEgress(host, 443, {}, resolve)).ok, host).toBe(false);
    expect(await decideEgress('nowhere.example', 443, {}, resolve)).toEqual({ ok: false, reason: 'does not resolve' });
    expect(await decideEgress('[::ffff:127.0.0.1]', 443, {}, resolve)).toEqual({ ok: false, reason: 'ipv4-mapped address' });
    expect(await decideEgress('2130706433', 443, {}, resolve)).toEqual({ ok: false, reason: 'numeric host trick' });
  });

  it('allows port 443 only unless declared, refuses the platform own hosts, and lets declared test servers through', async () => {
    expect(await decideEgress('public.example', 80, {}, resolve)).toEqual({ ok: false, reason: 'port 80 not allowed' });
    expect((await decideEgress('public.example', 80, { ports: [443, 80] }, resolve)).ok).toBe(true);
    const platform = { platformHosts: ['blob.core.windows.net', 'vault.azure.net'] };
    expect(await decideEgress('dpstore.blob.core.windows.net', 443, platform, resolve)).toEqual({ ok: false, reason: 'platform host' });
    expect((await decideEgress('127.0.0.1', 4873, {}, resolve)).ok).toBe(false);
    expect(await decideEgress('127.0.0.1', 4873, { exceptions: () => ['127.0.0.1:4873'] }, resolve)).toEqual({ ok: true, address: '127.0.0.1' });
    expect((await decideEgress('127.0.0.1', 4874, { exceptions: () => ['127.0.0.1:4873'] }, resolve)).ok).toBe(false);
  });

  it("enforces the sandbox's allowance by name before resolving; the platform's hosts stay refused whatever the list says", async () => {
    const allowance = { layers: [['public.example', 'internal.example', 'api.public.example:8443', 'dpstore.blob.core.windows.net']] };
    const policy = { allowance: () => allowance, platformHosts: ['blob.core.windows.net'] };
    expect(await decideEgress('public.example', 443, policy, resolve)).toEqual({ ok: true, address: '93.184.216.34' });
    expect(await decideEgress('other.example', 443, policy, resolve)).toEqual({ ok: false, reason: 'not on the egress allow-list' });
    expect(await decideEgress('93.184.216.34', 443, policy, resolve)).toEqual({ ok: false, reason: 'not on the egress allow-list' });
    expect(await decideEgress('public.example', 8443, policy, resolve)).toEqual({ ok: false, reason: 'not on the egress allow-list' });
    // A listed name still has to resolve to a public address, and a listed platform host is still refused.
    expect(await decideEgress('internal.example', 443, policy, resolve)).toEqual({ ok: false, reason: 'private address' });
    expect(await decideEgress('dpstore.blob.core.windows.net', 443, policy, resolve)).toEqual({ ok: false, reason: 'platform host' });
    // The test allowance: a listed name may lead to a declared loopback test server, an unlisted one may not.
    const withTestServer = { ...policy, exceptions: () => ['127.0.0.1:4873'] };
    const loop = async (host: string) => (host.endsWith('.test') ? ['127.0.0.1'] : resolve(host));
    const listed = { ...withTestServer, allowance: () => ({ layers: [['registry.test:4873']] }) };
    expect(await decideEgress('registry.test', 4873, listed, loop)).toEqual({ ok: true, address: '127.0.0.1' });
    expect(await decideEgress('other.test', 4873, listed, loop)).toEqual({ ok: false, reason: 'not on the egress allow-list' });
    expect(await decideEgress('registry.test', 4873, { exceptions: withTestServer.exceptions }, loop)).toEqual({ ok: false, reason: 'port 4873 not allowed' });
  });

  it('refuses the names an allowance carries in `refuse` (the platform hosts a host agent is told of), whatever its layers allow', async () => {
    const allowance = { layers: [['*.azurewebsites.net', 'public.example']], refuse: ['dp-prod.azurewebsites.net'] };
    const agentProxy = { allowance: () => allowance }; // a host agent's proxy: no platform hosts of its own
    const resolveAll = async () => ['93.184.216.34'];
    expect(await decideEgress('dp-prod.azurewebsites.net', 443, agentProxy, resolveAll)).toEqual({ ok: false, reason: 'platform host' });
    expect(await decideEgress('scm.dp-prod.azurewebsites.net', 443, agentProxy, resolveAll)).toEqual({ ok: false, reason: 'platform host' });
    expect(await decideEgress('someone-else.azurewebsites.net', 443, agentProxy, resolveAll)).toEqual({ ok: true, address: '93.184.216.34' });
    expect(await decideEgress('public.example', 443, agentProxy, resolve)).toEqual({ ok: true, address: '93.184.216.34' });
  });
});

describe('the egress proxy on its unix socket', () => {
  const socketPath = path.join(os.tmpdir(), `dp-egress-${randomBytes(4).toString('hex')}.sock`);
  let proxy: EgressProxy;
  let target: net.Server;
  let targetPort = 0;
  let testServer = '';
  beforeAll(async () => {
    target = net.createServer((s) => s.end('reached'));
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    targetPort = (target.address() as net.AddressInfo).port;
    testServer = `127.0.0.1:${targetPort}`;
    proxy = await startEgressProxy(socketPath, { exceptions: () => [testServer] });
  });
  afterAll(async () => {
    await proxy.close();
    await new Promise((r) => target.close(r));
    rmSync(socketPath, { force: true });
  });

  const connectThrough = (destination: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = http.request({ socketPath, method: 'CONNECT', path: destination });
      req.on('connect', (res, socket, head: Buffer) => {
        let body = head.toString();
        socket.on('data', (d: Buffer) => (body += d.toString()));
        socket.on('close', () => resolve(`${res.statusCode} ${body}`));
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(`${res.statusCode} ${body.trim()}`));
      });
      req.on('error', reject);
      req.end();
    });

  it('tunnels to a declared test server, refuses the same listener under every other name, and counts both', async () => {
    expect(await connectThrough(testServer)).toBe('200 reached');
    for (const destination of [`127.0.0.2:${targetPort}`, `[::1]:${targetPort}`, `[::ffff:127.0.0.1]:${targetPort}`, `2130706433:${targetPort}`, `0x7f.1:${targetPort}`, `localhost:${targetPort}`, '169.254.169.254:80', '168.63.129.16:443'])
      expect(await connectThrough(destination), destination).toMatch(/^403 egress refused/);
    const counts = proxy.counts();
    expect(counts.allowed).toBe(1);
    expect(counts.refused).toBe(8);
    expect(counts.refusals.map((r) => r.reason)).toContain('metadata address');
  });

  it('refuses a plain-HTTP forward to a refused address too', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request({ socketPath, method: 'GET', path: 'http://169.254.169.254/metadata/instance', headers: { host: '169.254.169.254' } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(`${res.statusCode} ${body.trim()}`));
      });
      req.on('error', reject);
      req.end();
    });
    expect(answer).toMatch(/^403 egress refused/);
  });
});
