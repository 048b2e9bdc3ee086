import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../domain/launchGuard';
import type { SandboxHandle } from '../../../domain/ports/sandboxHost';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { azuriteConnectionString } from '../../support/azurite';
import { redactorFor } from './sandboxTestKit';

/**
 * The sandbox's network, attacked from inside as the agent on the real local host: Azurite's ports, a port
 * standing for the API's, a loopback listener, every path-bound unix socket the host has, the metadata
 * addresses and IPv6 loopback get nothing, directly or through the egress proxy, while GATEWAY_URL answers.
 */
const node = process.execPath;
const isRoot = process.getuid?.() === 0;
const guard: GuardPolicy = { secretNames: [], managedValues: [] };
const redactor = redactorFor([]);
const marker = `dp-net-${randomBytes(6).toString('hex')}`;

function azuritePorts(): number[] {
  const connection = azuriteConnectionString();
  return [...connection.matchAll(/Endpoint=http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
}

/** Path-bound unix sockets of the host's network namespace, as /proc/net/unix lists them. */
function hostUnixSockets(): string[] {
  return readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[7])
    .filter((p): p is string => p !== undefined && p.startsWith('/'));
}

/** Runs inside the sandbox: tries each TCP target, unix socket and HTTP URL, reports what happened. */
const PROBE = String.raw`
const net=require('net'),http=require('http');const plan=JSON.parse(process.argv[1]);const out={};
const connect=(opts)=>new Promise((r)=>{const s=net.connect(opts);const t=setTimeout(()=>{s.destroy();r('timeout')},1500);
 s.on('connect',()=>{clearTimeout(t);s.destroy();r('connected')});s.on('error',(e)=>{clearTimeout(t);r(e.code)})});
const get=(url,opts={})=>new Promise((r)=>{const q=http.request(url,{method:opts.method||'GET',timeout:3000,...(opts.path?{path:opts.path}:{})},(res)=>{let b='';res.on('data',(d)=>b+=d);res.on('end',()=>r(res.statusCode+' '+b.trim()))});
 q.on('error',(e)=>r(e.code));q.on('timeout',()=>{q.destroy();r('timeout')});q.end()});
const connectVia=(target)=>new Promise((r)=>{const q=http.request({host:'127.0.0.1',port:3128,method:'CONNECT',path:target,timeout:3000});
 q.on('connect',(res,s)=>{s.destroy();r(String(res.statusCode))});q.on('response',(res)=>r(String(res.statusCode)));q.on('error',(e)=>r(e.code));q.end()});
(async()=>{
 for(const [h,p] of plan.tcp) out['tcp '+h+':'+p]=await connect({host:h,port:p});
 for(const p of plan.unix) out['unix '+p]=await connect({path:p});
 for(const t of plan.viaProxy) out['proxy '+t]=await connectVia(t);
 out.gateway=await get(process.env.GATEWAY_URL,{method:'POST'});
 out.apiBesideGateway=await get(plan.api);
 out.proxyEnv=process.env.HTTPS_PROXY||'';
 console.log(JSON.stringify(out));
})();`;

describe("a sandbox's network", () => {
  let host: LocalProcessSandboxHost;
  let sandbox: SandboxHandle;
  let api: http.Server;
  let listener: net.Server;
  let unixListener: net.Server;
  let apiPort = 0;
  let listenerPort = 0;
  const unixPath = path.join(os.tmpdir(), `${marker}.sock`);
  const gatewayPath = '/api/gateway/operations';

  beforeAll(async () => {
    // Stands for the Function App: the gateway route and, beside it, the rest of the API on the same port.
    api = http.createServer((req, res) => res.end(req.url === gatewayPath ? 'gateway-ok' : `api-${marker}`));
    listener = net.createServer((s) => s.end(marker));
    unixListener = net.createServer((s) => s.end(marker));
    await Promise.all([
      new Promise<void>((r) => api.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => listener.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => unixListener.listen(unixPath, r)),
    ]);
    apiPort = (api.address() as net.AddressInfo).port;
    listenerPort = (listener.address() as net.AddressInfo).port;
    host = await LocalProcessSandboxHost.open({ warn: () => undefined, gatewayUrl: `http://127.0.0.1:${apiPort}${gatewayPath}` });
    sandbox = await host.create({ runId: 'net', files: {}, redactor, guard });
  });
  afterAll(async () => {
    if (sandbox) await host.teardown(sandbox);
    await Promise.all([api, listener, unixListener].map((s) => new Promise((r) => s?.close(r))));
    rmSync(unixPath, { force: true });
  });

  it('reaches the gateway and nothing else of the host: not Azurite, the API, a loopback listener, a unix socket or the metadata service', async () => {
    expect(azuritePorts().length).toBeGreaterThanOrEqual(3); // blob, queue, table: the probe is not vacuous
    const loopbackTargets: Array<[string, number]> = [
      ...azuritePorts().map((p): [string, number] => ['127.0.0.1', p]),
      ['127.0.0.1', listenerPort],
      ['::1', listenerPort],
      ['::1', apiPort],
    ];
    const plan = {
      tcp: [...loopbackTargets, ['169.254.169.254', 80], ['168.63.129.16', 80]],
      unix: [unixPath, ...hostUnixSockets()],
      viaProxy: [...loopbackTargets.map(([h, p]) => (h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`)), '169.254.169.254:80', '168.63.129.16:443', `[::ffff:127.0.0.1]:${listenerPort}`, `2130706433:${listenerPort}`, `localhost:${apiPort}`],
      api: `http://127.0.0.1:${apiPort}/api/workspaces`,
    };
    const result = await host.exec(sandbox, { argv: [node, '-e', PROBE, JSON.stringify(plan)], identity: 'agent', timeoutMs: 60_000, env: { GATEWAY_URL: `http://127.0.0.1:${apiPort}${gatewayPath}` } });
    expect(result.exitCode, result.stderr).toBe(0);
    const seen = JSON.parse(result.stdout) as Record<string, string>;
    expect(seen.gateway).toBe('200 gateway-ok');
    if (!isRoot) {
      // The control, and why a host without isolation records IsolationDegraded: the host's loopback is open.
      expect(seen[`tcp 127.0.0.1:${listenerPort}`]).toBe('connected');
      return;
    }
    expect(seen.proxyEnv).toBe('http://127.0.0.1:3128');
    expect(seen.apiBesideGateway).toBe('404 not the gateway');
    for (const [h, p] of plan.tcp) expect(seen[`tcp ${h}:${p}`], `${h}:${p}`).not.toBe('connected');
    for (const p of plan.unix) expect(seen[`unix ${p}`], p).not.toBe('connected');
    for (const t of plan.viaProxy) expect(seen[`proxy ${t}`], t).toBe('403');
    const counts = host.inspect(sandbox).egress;
    expect(counts?.allowed).toBe(0);
    expect(counts?.refused).toBe(plan.viaProxy.length);
    expect(JSON.stringify(Object.values(seen))).not.toContain(marker);
  });
});
