import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './localHostProcess';

/** What `POST .../runs/{runId}/ssh` answers. */
export interface SshTicketAnswer {
  ticket: string;
  expiresAt: string;
  host: string;
  hostId: string;
  proxyCommand: string;
  knownHosts?: string;
  /** When the channel ends in Web PubSub: the client URL the proxy connects to. */
  pubsubUrl?: string;
}

export type SshOutcome = { code: number | null; stdout: string; stderr: string };

/**
 * OpenSSH's own `ssh` with nothing from this machine's config, the sandbox's host key pinned from the ticket's
 * `knownHosts`, and scripts/sshProxy.js as its transport (or, `asAnswered`, the route's proxyCommand verbatim).
 * No `command` asks for a shell; `input` is written to ssh's stdin and ended (without it, ssh's stdin is empty).
 */
export function sshThroughProxy(options: { ticket: SshTicketAnswer; command?: string; platform: string; caFile: string; dir: string; asAnswered?: boolean; sshOptions?: readonly string[]; input?: string | Buffer }): Promise<SshOutcome> & { child: ChildProcess } {
  const { ticket } = options;
  const knownHosts = path.join(options.dir, `known_hosts-${randomUUID()}`);
  writeFileSync(knownHosts, `${ticket.knownHosts ?? ''}\n`);
  const endpoint = ticket.pubsubUrl !== undefined ? `--pubsub '${ticket.pubsubUrl}'` : `--platform ${options.platform}`;
  const proxy = options.asAnswered ? ticket.proxyCommand : `${process.execPath} ${path.join(projectRoot, 'scripts', 'sshProxy.js')} ${endpoint} --ca ${options.caFile} ${ticket.ticket}`;
  const child = spawn('ssh', [
    '-F', '/dev/null', '-o', `ProxyCommand=${proxy}`, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=60', ...(options.sshOptions ?? []), `agent@${ticket.host}`, ...(options.command !== undefined ? [options.command] : []),
  ], { stdio: [options.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'], cwd: projectRoot });
  child.stdin?.on('error', () => undefined);
  if (options.input !== undefined) child.stdin?.end(options.input);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const result = new Promise<SshOutcome>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  return Object.assign(result, { child });
}
