import { mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { GuardPolicy } from '../../../domain/launchGuard';
import type { OutputRedactor } from '../../../domain/ports/sandboxHost';
import type { GuardedLauncher, LaunchedProcess } from '../guardedLauncher';
import type { PidNamespace } from '../pidNamespace';
import { listenOnUnixSocket } from './unixSocketListener';
import { startEgressProxy, type EgressPolicy, type EgressProxy, type EgressRefusal } from './egressProxy';

/**
 * The doors of a sandbox's network namespace. Inside it there is only loopback, and on loopback only what
 * a forwarder (root, in the sandbox's net and pid namespaces, started before any sandbox process) listens
 * on: the gateway's port, the egress proxy's port and, for tests, declared loopback test servers. Each
 * listener relays to a unix socket in a root-only directory of the host (never mounted into the sandbox),
 * and the host relays that to the real endpoint. Nothing else of the host's network is reachable, and the
 * agent cannot take a door's port first: they are bound before it exists.
 */

/** Where the egress proxy answers inside every sandbox. */
export const EGRESS_PROXY_PORT = 3128;
export const EGRESS_PROXY_URL = `http://127.0.0.1:${EGRESS_PROXY_PORT}`;

/** `node -e` source: listen on 127.0.0.1:<port> for each `<port>=<socket>` argument, relay to the socket. */
const FORWARDER_SCRIPT = `const net=require('net');const pairs=process.argv.slice(1);let ready=0;
for(const pair of pairs){const at=pair.indexOf('=');const port=Number(pair.slice(0,at));const socket=pair.slice(at+1);
net.createServer((c)=>{const u=net.connect(socket);c.pipe(u).pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());c.on('close',()=>u.destroy());u.on('close',()=>c.destroy());})
.listen(port,'127.0.0.1',()=>{if(++ready===pairs.length)console.log('dp-doors-ready');});}
if(pairs.length===0)console.log('dp-doors-ready');`;

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost']);

export interface Doors {
  readonly egress: EgressProxy;
  close(): Promise<void>;
}

export class DoorsStartError extends Error {
  constructor(detail: string) {
    super(`could not open the sandbox's network doors: ${detail}`);
    this.name = 'DoorsStartError';
  }
}

function splitHostPort(hostPort: string): { host: string; port: number } {
  const at = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, at), port: Number(hostPort.slice(at + 1)) };
}

async function bridge(socketPath: string, host: string, port: number): Promise<net.Server> {
  const server = net.createServer((inside) => {
    const outside = net.connect(port, host);
    inside.pipe(outside).pipe(inside);
    inside.on('error', () => outside.destroy());
    outside.on('error', () => inside.destroy());
    inside.on('close', () => outside.destroy());
    outside.on('close', () => inside.destroy());
  });
  return listenOnUnixSocket(server, socketPath);
}

/**
 * The gateway's door passes HTTP requests for the gateway's own path only: the gateway is a route of the
 * API's port, and the rest of the API (or anything else on that port) is not the sandbox's business.
 */
async function gatewayBridge(socketPath: string, gatewayUrl: string): Promise<net.Server> {
  const gateway = new URL(gatewayUrl);
  const server = http.createServer((req, res) => {
    const requested = new URL(req.url ?? '/', 'http://door.invalid');
    if (requested.pathname !== gateway.pathname) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not the gateway\n');
      return;
    }
    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: gateway.host };
    const upstream = http.request({ host: gateway.hostname, port: Number(gateway.port || 80), method: req.method, path: `${gateway.pathname}${requested.search}`, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    req.pipe(upstream);
  });
  return listenOnUnixSocket(server, socketPath);
}

/** One door: a loopback port inside the sandbox and the host's unix socket behind it. */
export interface DoorSocket {
  readonly port: number;
  readonly socketPath: string;
}

export interface DoorSockets {
  readonly egress: EgressProxy;
  readonly sockets: readonly DoorSocket[];
  close(): Promise<void>;
}

export interface DoorSocketOptions {
  /** A directory only root (or the forwarder's uid) can enter, outside everything bound into the sandbox. */
  readonly dir: string;
  /** The gateway as the host reaches it (`http://127.0.0.1:7071/...`): the same port answers inside. */
  readonly gatewayUrl?: string;
  /** Loopback `host:port` test servers that get a door of their own (tests only). */
  readonly testServers: readonly string[];
  readonly policy: EgressPolicy;
  readonly onRefused?: (refusal: EgressRefusal) => void;
}

/**
 * The host's side of the doors, whatever runs the forwarder inside: the egress proxy, the gateway's door and
 * the test servers' doors, each on a unix socket in `dir`. A sandbox host puts a forwarder on the sandbox's
 * loopback in front of them (a process in its namespaces here, the container's main process for Docker).
 */
export async function openDoorSockets(options: DoorSocketOptions): Promise<DoorSockets> {
  await mkdir(options.dir, { mode: 0o700 });
  const servers: net.Server[] = [];
  let egress: EgressProxy | undefined;
  const close = async (): Promise<void> => {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    await egress?.close();
    await rm(options.dir, { recursive: true, force: true });
  };
  try {
    const sockets: DoorSocket[] = [];
    egress = await startEgressProxy(path.join(options.dir, 'egress.sock'), options.policy, options.onRefused);
    sockets.push({ port: EGRESS_PROXY_PORT, socketPath: path.join(options.dir, 'egress.sock') });
    const seen = new Set<number>([EGRESS_PROXY_PORT]);
    if (options.gatewayUrl) {
      const gateway = new URL(options.gatewayUrl);
      const port = Number(gateway.port || 80);
      if (gateway.protocol === 'http:' && LOOPBACK_NAMES.has(gateway.hostname) && !seen.has(port)) {
        seen.add(port);
        const socketPath = path.join(options.dir, 'gateway.sock');
        servers.push(await gatewayBridge(socketPath, options.gatewayUrl));
        sockets.push({ port, socketPath });
      }
    }
    for (const [i, hostPort] of options.testServers.entries()) {
      const { host, port } = splitHostPort(hostPort);
      // Only a loopback endpoint gets a door on the sandbox's own loopback; anything else goes by the proxy.
      if (!LOOPBACK_NAMES.has(host) || !Number.isInteger(port) || seen.has(port)) continue;
      seen.add(port);
      const socketPath = path.join(options.dir, `door-${i}.sock`);
      servers.push(await bridge(socketPath, host, port));
      sockets.push({ port, socketPath });
    }
    return { egress, sockets, close };
  } catch (error) {
    await close();
    throw error;
  }
}

export async function openDoors(options: DoorSocketOptions & {
  launcher: GuardedLauncher;
  ns: PidNamespace;
  env: Readonly<Record<string, string>>;
  guard: GuardPolicy;
  redactor: OutputRedactor;
}): Promise<Doors> {
  const opened = await openDoorSockets(options);
  let forwarder: LaunchedProcess | undefined;
  const close = async (): Promise<void> => {
    await forwarder?.stop();
    await opened.close();
  };
  try {
    const pairs = opened.sockets.map((door) => `${door.port}=${door.socketPath}`);
    let ready!: () => void;
    const readyLine = new Promise<void>((resolve) => (ready = resolve));
    let out = '';
    forwarder = await options.launcher.start({
      argv: [process.execPath, '-e', FORWARDER_SCRIPT, ...pairs],
      prefix: ['nsenter', `--target=${options.ns.initPid}`, '--net', '--pid', '--'],
      standingEnv: options.env,
      guard: options.guard,
      cwd: options.dir,
      redactor: options.redactor,
      maxOutputBytes: 4096,
      onStdout: (text) => {
        out += text;
        if (out.includes('dp-doors-ready')) ready();
      },
    });
    const outcome = await Promise.race([readyLine.then(() => 'ready' as const), forwarder.exited]);
    if (outcome !== 'ready') throw new DoorsStartError(`exit ${outcome.exitCode ?? outcome.signal}: ${outcome.stderr.trim().slice(0, 300)}`);
    return { egress: opened.egress, close };
  } catch (error) {
    await close();
    throw error;
  }
}
