import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { freeLoopbackPort } from '../../localhost/azuriteProcess';
import type { Call } from '../e2e/runHarness';
import { projectRoot } from './localHostProcess';

/** What a backend with `SANDBOX_HOST=remote` needs: its channel port and the directory of its self-signed certificate. */
export async function remoteHostSettings(dir: string): Promise<{ env: Record<string, string>; platform: string; caFile: string }> {
  const port = await freeLoopbackPort();
  const tlsDir = path.join(dir, 'tls');
  return {
    env: { SANDBOX_HOST: 'remote', HOST_CHANNEL_PORT: String(port), HOST_CHANNEL_TLS_DIR: tlsDir },
    platform: `https://127.0.0.1:${port}`,
    caFile: path.join(tlsDir, 'cert.pem'),
  };
}

/** A real host agent process (scripts/hostAgent.js) pinned to the platform's certificate, isolation off unless asked. */
export function spawnHostAgent(options: { platform: string; caFile: string; token?: string; state: string; args?: readonly string[]; env?: Record<string, string> }): ChildProcess & { output(): string } {
  const child = spawn(process.execPath, [
    path.join(projectRoot, 'scripts', 'hostAgent.js'), '--platform', options.platform, '--ca', options.caFile, '--state', options.state,
    ...(options.token ? ['--token', options.token] : []), ...(options.args ?? ['--isolation', 'off']),
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  // An agent that dies unasked (a crash, a signal from outside) takes every sandbox of the test with it, and the
  // failures that follow name only the symptom: its own log is the evidence, printed as it ends.
  let stopped = false;
  const kill = child.kill.bind(child);
  child.kill = (signal?: NodeJS.Signals | number): boolean => ((stopped = true), kill(signal));
  child.once('exit', (code, signal) => {
    if (!stopped && (signal !== null || code !== 0)) console.error(`host agent (pid ${child.pid}) exited unasked: ${signal ?? `code ${code}`}\n${output}`);
  });
  return Object.assign(child, { output: () => output });
}

/** Enrols a host for the workspace (as its owner) and waits until its agent has connected. */
export async function enrolAndConnect(owner: Call, ws: string, agent: (token: string) => ChildProcess, name = 'e2e-box'): Promise<{ hostId: string; agent: ChildProcess }> {
  const enrolment = (await owner('POST', `/api/workspaces/${ws}/hosts`, { name })).json as { enrolmentToken: string; hostId: string };
  const child = agent(enrolment.enrolmentToken);
  const deadline = Date.now() + 90_000;
  for (;;) {
    const hosts = (await owner('GET', `/api/workspaces/${ws}/hosts`)).json as { hostId: string; lastSeenAt?: string }[];
    if (hosts.find((h) => h.hostId === enrolment.hostId)?.lastSeenAt) return { hostId: enrolment.hostId, agent: child };
    if (child.exitCode !== null) throw new Error(`the host agent exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('the agent never connected');
    await new Promise((r) => setTimeout(r, 200));
  }
}
