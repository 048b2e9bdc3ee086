import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from './localHostProcess';

/** A real `npm run host-agent` process (scripts/hostAgent.js), its output kept for failure messages. */
export interface HostAgentProcess {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  stop(): Promise<void>;
}

export interface HostAgentArgs {
  /** The platform's https:// origin (the local channel server's url). */
  readonly platform: string;
  /** The certificate the agent pins. */
  readonly ca: string;
  /** Its credential file. */
  readonly state: string;
  /** The one-time enrolment token (left out on a restart with the saved credential). */
  readonly token?: string;
  /** Any further flags: `--inner docker`, `--image`, `--scope`, `--gateway-url`, ... */
  readonly flags?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

export function startHostAgent(args: HostAgentArgs): HostAgentProcess {
  const child = spawn(
    process.execPath,
    [
      path.join(projectRoot, 'scripts', 'hostAgent.js'), '--platform', args.platform, '--ca', args.ca, '--state', args.state,
      ...(args.token ? ['--token', args.token] : []), ...(args.flags ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: args.env ?? process.env },
  );
  let output = '';
  child.stdout?.on('data', (d) => (output += String(d)));
  child.stderr?.on('data', (d) => (output += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Polls `check` every 100 ms until it holds; fails naming `what` (and the agent's output, if given) after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 120_000, agent?: HostAgentProcess): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${agent ? `: ${agent.output()}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
