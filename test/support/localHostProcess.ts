import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { freeLoopbackPort } from '../../localhost/azuriteProcess';

export const projectRoot = path.resolve(__dirname, '..', '..');

export interface LocalHostProcess {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Sends the signal and resolves with the exit code once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartLocalHostOptions {
  /** Passed as `--app`; relative to the project root. */
  readonly app?: string;
  /** Added to this process's environment; `undefined` removes a variable. */
  readonly env?: Record<string, string | undefined>;
  readonly args?: readonly string[];
  /** `host` runs dist/localhost/main.js directly, `npm-start` goes through scripts/start.js. */
  readonly via?: 'host' | 'npm-start';
}

function command(options: StartLocalHostOptions, port: number): { args: string[]; env: NodeJS.ProcessEnv } {
  const entry = options.via === 'npm-start' ? path.join(projectRoot, 'scripts', 'start.js') : path.join(projectRoot, 'dist', 'localhost', 'main.js');
  const args = [entry, ...(options.app ? ['--app', options.app] : []), ...(options.args ?? [])];
  const env: NodeJS.ProcessEnv = { ...process.env, LOCAL_HOST_PORT: String(port) };
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return { args, env };
}

/** Starts the local host as a child process on a free port and waits until it prints "Ready.". */
export async function startLocalHost(options: StartLocalHostOptions): Promise<LocalHostProcess> {
  const port = await freeLoopbackPort();
  const { args, env } = command(options, port);
  const child = spawn(process.execPath, args, { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(child, 'exit');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`local host did not become ready:\n${out}\n${err}`)), 30_000);
    const check = (): void => {
      if (out.includes('Ready.')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    void exited.then(([code]) => {
      clearTimeout(timer);
      reject(new Error(`local host exited with ${String(code)} before ready:\n${out}\n${err}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    stdout: () => out,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const [code] = await exited;
      clearTimeout(timer);
      return code as number | null;
    },
  };
}

/** Runs the host expecting it to fail at start; resolves with its exit code and output. */
export async function runLocalHostToExit(options: StartLocalHostOptions & { port?: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const port = options.port ?? (await freeLoopbackPort());
  const { args, env } = command(options, port);
  const child = spawn(process.execPath, args, { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  return { code: code as number | null, stdout, stderr };
}

/** Runs a script under scripts/ (for example token.js) to completion. */
export async function runScript(script: string, args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(projectRoot, 'scripts', script), ...args], { cwd: projectRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = await once(child, 'exit');
  return { code: code as number | null, stdout, stderr };
}
