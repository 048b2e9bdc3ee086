import { lookup } from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import { type EgressAllowance, egressAllows } from '../../../domain/egress';
import { isNumericTrick, refusedAddressClass } from './addressPolicy';
import { listenOnUnixSocket } from './unixSocketListener';

/**
 * The one way out of an isolated sandbox to anything but the gateway: an HTTP proxy the platform runs on the
 * host, reached from inside the sandbox's network namespace through its door (doors.ts). `CONNECT host:port`
 * tunnels (TLS stays end to end) and absolute-URI requests are forwarded. For each, the proxy resolves the
 * name itself, refuses it if any answer is loopback, private, link-local, metadata, IPv4-mapped or otherwise
 * not public unicast, and connects to the address it checked (pinned: a second lookup cannot swap it).
 * Numeric-host tricks, ports other than the declared ones (443 by default) and the platform's own hosts are
 * refused by name. A sandbox's allowance (the owner's allow-list, narrowed by the run's phase) is read at every
 * request: a name it does not match is refused before it is resolved. Every decision is counted; refusals are
 * kept with their reason.
 */

export interface EgressPolicy {
  /** Ports a destination may use (default: 443 only). */
  readonly ports?: readonly number[];
  /** Host names that are the platform's own (storage, Key Vault, Service Bus, the Function App): refused. */
  readonly platformHosts?: readonly string[];
  /**
   * `host:port` destinations allowed whatever their address or port: the gateway itself, and (tests only,
   * refused by a production configuration) loopback test servers. Read at every request.
   */
  readonly exceptions?: () => readonly string[];
  /**
   * Which names the sandbox may reach now (domain/egress.ts), read at every request; undefined: any public
   * name. An allow-list entry with a port declares that port for that name.
   */
  readonly allowance?: () => EgressAllowance | undefined;
  /** Tests only: answers names from a table instead of the system resolver (never set by the composition). */
  readonly resolve?: Resolver;
}

export interface EgressRefusal {
  readonly host: string;
  readonly port: number;
  readonly reason: string;
}

export interface EgressCounts {
  readonly allowed: number;
  readonly refused: number;
  readonly refusals: readonly EgressRefusal[];
}

export type EgressDecision = { ok: true; address: string } | { ok: false; reason: string };

export type Resolver = (host: string) => Promise<readonly string[]>;
const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

function bare(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Decides one destination; exported for the tests that walk every address class. */
export async function decideEgress(hostIn: string, port: number, policy: EgressPolicy, resolve: Resolver = policy.resolve ?? systemResolver): Promise<EgressDecision> {
  const host = bare(hostIn).toLowerCase().replace(/\.$/, '');
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, reason: 'invalid port' };
  const exceptions = policy.exceptions?.() ?? [];
  const endpoint = (address: string): string => `${net.isIP(address) === 6 ? `[${address}]` : address}:${port}`;
  if (exceptions.includes(endpoint(host))) return { ok: true, address: host };
  if (host === '' || isNumericTrick(host)) return { ok: false, reason: 'numeric host trick' };
  const allowance = policy.allowance?.();
  const platformHosts = [...(policy.platformHosts ?? []), ...(allowance?.refuse ?? [])];
  if (platformHosts.some((h) => h.toLowerCase() === host || host.endsWith(`.${h.toLowerCase()}`))) return { ok: false, reason: 'platform host' };
  if (allowance && !egressAllows(allowance, host, port)) return { ok: false, reason: 'not on the egress allow-list' };
  // An allow-list entry names its port; without a list, the declared ports (443) only.
  if (!allowance && !(policy.ports ?? [443]).includes(port)) return { ok: false, reason: `port ${port} not allowed` };
  let addresses: readonly string[];
  try {
    addresses = net.isIP(host) ? [host] : await resolve(host);
  } catch {
    return { ok: false, reason: 'does not resolve' };
  }
  if (addresses.length === 0) return { ok: false, reason: 'does not resolve' };
  for (const address of addresses) {
    const refused = refusedAddressClass(address);
    // Tests only: a name on the allow-list may lead to a declared loopback test server (production declares none).
    if (refused && !(allowance && exceptions.includes(endpoint(address)))) return { ok: false, reason: `${refused} address` };
  }
  return { ok: true, address: addresses[0] as string };
}

export interface EgressProxy {
  /** Every decision since the proxy started (refusals: the first ones kept). */
  counts(): EgressCounts;
  /** The decisions since the previous drain, and starts a new period (what a run step records). */
  drain(): EgressCounts;
  close(): Promise<void>;
}

const MAX_KEPT_REFUSALS = 100;

/** Starts a proxy listening on a unix socket (a path only root can reach). */
export async function startEgressProxy(socketPath: string, policy: EgressPolicy, onRefused?: (refusal: EgressRefusal) => void): Promise<EgressProxy> {
  let allowed = 0;
  let refused = 0;
  const refusals: EgressRefusal[] = [];
  let period = { allowed: 0, refused: 0, refusals: [] as EgressRefusal[] };
  const decide = async (host: string, port: number): Promise<EgressDecision> => {
    const decision = await decideEgress(host, port, policy);
    if (decision.ok) {
      allowed++;
      period.allowed++;
    } else {
      refused++;
      period.refused++;
      const refusal = { host: bare(host), port, reason: decision.reason };
      if (refusals.length < MAX_KEPT_REFUSALS) refusals.push(refusal);
      if (period.refusals.length < MAX_KEPT_REFUSALS) period.refusals.push(refusal);
      onRefused?.(refusal);
    }
    return decision;
  };
  const server = http.createServer((req, res) => {
    let target: URL;
    try {
      target = new URL(req.url ?? '');
      if (target.protocol !== 'http:') throw new Error('not http');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('egress proxy: absolute http:// URLs or CONNECT only\n');
      return;
    }
    const port = Number(target.port || 80);
    void decide(target.hostname, port).then((decision) => {
      if (!decision.ok) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end(`egress refused: ${decision.reason}\n`);
        return;
      }
      const headers: http.OutgoingHttpHeaders = { ...req.headers, host: target.host };
      delete headers['proxy-connection'];
      delete headers['proxy-authorization'];
      const upstream = http.request({ host: decision.address, port, method: req.method, path: `${target.pathname}${target.search}`, headers, setHost: false }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      req.pipe(upstream);
    });
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    client.on('error', () => client.destroy());
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:]+):(\d+)$/.exec(req.url ?? '');
    if (!match) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const [, host = '', port = ''] = match;
    void decide(host, Number(port)).then((decision) => {
      if (!decision.ok) {
        client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\negress refused: ${decision.reason}\n`);
        return;
      }
      const upstream = net.connect(Number(port), decision.address, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client).pipe(upstream);
      });
      upstream.on('error', () => (client.writable ? client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n') : client.destroy()));
      client.on('close', () => upstream.destroy());
    });
  });
  await listenOnUnixSocket(server, socketPath);
  return {
    counts: () => ({ allowed, refused, refusals: [...refusals] }),
    drain: () => {
      const drained = period;
      period = { allowed: 0, refused: 0, refusals: [] };
      return drained;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
