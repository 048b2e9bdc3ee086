import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, createReadStream, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { dockerEngine, engineAnswers } from '../../infra/sandbox/docker/dockerEngine';

/**
 * A second, throw-away Docker engine with `--userns-remap`, for the test that shows what remapping changes. The
 * `dockremap` user and its subordinate ranges exist only in a private mount namespace (copies of /etc/passwd,
 * group, subuid and subgid bound over the originals), so the machine's shared /etc is never written. Its own data
 * root, exec root and socket, no bridge, no iptables, as `.ci/run` starts its engine.
 *
 * `workspaceRoot` is a bind mount of its own made shared before the engine's namespace is split off (as a slave):
 * the workspace tmpfs mounts the Docker host makes there later reach the engine, as they would on a machine
 * where the engine shares the host's mount namespace; the engine's own mounts never come back.
 */
export const REMAP_BASE = 2_100_000_000;
export const REMAP_SIZE = 65_536;

export interface RemappedEngine {
  readonly docker: Dockerode;
  readonly socketPath: string;
  /** Where the Docker host may mount workspaces that this engine sees. */
  readonly workspaceRoot: string;
  stop(): Promise<void>;
}

const START = `set -e
D="$1"
for f in passwd group subuid subgid; do if [ -e /etc/$f ]; then cp /etc/$f "$D/$f"; else : > "$D/$f"; fi; done
grep -q '^dockremap:' "$D/passwd" || echo 'dockremap:x:65533:65533::/nonexistent:/usr/sbin/nologin' >> "$D/passwd"
grep -q '^dockremap:' "$D/group" || echo 'dockremap:x:65533:' >> "$D/group"
echo "dockremap:${REMAP_BASE}:${REMAP_SIZE}" > "$D/subuid"
echo "dockremap:${REMAP_BASE}:${REMAP_SIZE}" > "$D/subgid"
for f in passwd group subuid subgid; do mount --bind "$D/$f" /etc/$f; done
exec dockerd --data-root "$D/root" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" -H "unix://$D/docker.sock" \\
  --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 --userns-remap=dockremap
`;

/** Why this machine cannot start one (not root, no dockerd or unshare), or undefined. */
export function remappedEngineUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['dockerd', 'unshare', 'mount']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no ${tool}`;
  return undefined;
}

export async function startRemappedEngine(timeoutMs = 90_000): Promise<RemappedEngine> {
  // Short: the socket's path must stay under 108 bytes.
  const dir = mkdtempSync('/tmp/dp-userns-');
  // The remapped root must traverse to its data root.
  chmodSync(dir, 0o711);
  writeFileSync(path.join(dir, 'start.sh'), START, { mode: 0o700 });
  const socketPath = path.join(dir, 'docker.sock');
  const workspaceRoot = path.join(dir, 'ws');
  mkdirSync(workspaceRoot, { mode: 0o711 });
  for (const args of [['--bind', workspaceRoot, workspaceRoot], ['--make-shared', workspaceRoot]]) {
    const made = spawnSync('mount', args, { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`mount ${args.join(' ')}: ${made.stderr}`);
  }
  const log: string[] = [];
  const daemon: ChildProcess = spawn('unshare', ['-m', '--propagation', 'slave', 'sh', path.join(dir, 'start.sh'), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  daemon.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  daemon.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  const docker = dockerEngine(socketPath);
  const stop = async (): Promise<void> => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGTERM');
      const killed = setTimeout(() => daemon.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killed);
    }
    // Its mounts lived in its own namespace and went with it; what is left is the shared workspace mount and plain files.
    spawnSync('umount', ['-l', workspaceRoot]);
    await rm(dir, { recursive: true, force: true });
  };
  const until = Date.now() + timeoutMs;
  while (!(existsSync(socketPath) && (await engineAnswers(docker)))) {
    if (daemon.exitCode !== null || Date.now() > until) {
      await stop();
      throw new Error(`the remapped dockerd did not start: ${log.join('').slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { docker, socketPath, workspaceRoot, stop };
}

/** A tiny image of `sleep` and its libraries (no registry): enough to run a process whose host uid we read. */
export async function importSleepImage(docker: Dockerode, tag: string): Promise<void> {
  const dir = mkdtempSync('/tmp/dp-userns-image-');
  try {
    const files = ['/bin/sleep', ...(spawnSync('ldd', ['/bin/sleep'], { encoding: 'utf8' }).stdout.match(/\/[^\s)]+/g) ?? [])];
    for (const file of files) spawnSync('sh', ['-c', 'mkdir -p "$1$(dirname "$2")" && cp -L "$2" "$1$2"', 'copy', path.join(dir, 'rootfs'), file]);
    spawnSync('tar', ['-C', path.join(dir, 'rootfs'), '-cf', path.join(dir, 'rootfs.tar'), '.']);
    const [repo, version] = tag.split(':');
    const stream = await docker.importImage(createReadStream(path.join(dir, 'rootfs.tar')), { repo, tag: version });
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve())));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
