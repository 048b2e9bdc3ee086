import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, closeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { dockerEngine, engineAnswers } from '../../infra/sandbox/docker/dockerEngine';

/**
 * A dockerd of a test's own, which the test may stop and start again: its own data root, exec root, pidfile and
 * socket under a temp directory, no iptables and no bridge (as `.ci/run` starts CI's). The shared engine at
 * DOCKER_HOST is never stopped: other suites run on it.
 */
export interface PrivateDockerd {
  readonly socketPath: string;
  readonly docker: Dockerode;
  /** SIGTERM, then waits for the daemon to exit (it stops its containers first). */
  stop(): Promise<void>;
  /** Starts the daemon again on the same directories and waits until it answers. */
  start(): Promise<void>;
  /** Stops it and removes its directories. */
  remove(): Promise<void>;
}

export function dockerdInstalled(): boolean {
  return spawnSync('sh', ['-c', 'command -v dockerd'], { stdio: 'ignore' }).status === 0;
}

const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 60_000;

export async function startPrivateDockerd(): Promise<PrivateDockerd> {
  // Short: containerd's sockets live under the exec root, and a unix socket path has 108 bytes at most.
  const dir = mkdtempSync('/tmp/dpe-');
  const socketPath = path.join(dir, 'docker.sock');
  const docker = dockerEngine(socketPath);
  let daemon: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async (): Promise<void> => {
    const log = openSync(path.join(dir, 'dockerd.log'), 'a');
    daemon = spawn(
      'dockerd',
      [
        '--data-root', path.join(dir, 'root'), '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'dockerd.pid'),
        '-H', `unix://${socketPath}`, '--iptables=false', '--ip6tables=false', '--bridge=none', '--storage-driver=overlay2',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    const child = daemon;
    exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const until = Date.now() + READY_TIMEOUT_MS;
    while (!(await engineAnswers(docker, 1000))) {
      if (child.exitCode !== null || Date.now() > until)
        throw new Error(`the test's dockerd did not start; its log ends:\n${readFileSync(path.join(dir, 'dockerd.log'), 'utf8').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const stop = async (): Promise<void> => {
    const child = daemon;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), STOP_TIMEOUT_MS))]);
    if (!stopped) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  await start();
  return {
    socketPath,
    docker,
    stop,
    start,
    remove: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
