import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { chmod, chown, lstat, mkdir, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { DomainError } from '../../../domain/errors';
import { LABEL } from './containerSpec';
import { AGENT_UID, SANDBOX_GID } from './imageFiles';
import { hostGid, hostUid, NOT_REMAPPED, type UserNamespaceIds } from './userNamespaceIds';

/**
 * Where a Docker sandbox's workspace lives. Without a kept volume: a tmpfs of its own, mounted by this host at
 * the workspace directory with a size limit (a write past it fails with ENOSPC inside the sandbox, never fills
 * the host's /dev/shm). With one: the workspace's named Docker volume, found by a hash of the host's scope and
 * the workspace id (never by text a RunSpec carries), labelled with both and mounted at its own mount point, so
 * this host and the sandbox see the same path. The engine's `local` driver on a plain directory has no quota:
 * a kept volume is limited only by the disk of the engine's data root (docs/sandbox-hosts.md).
 */

const run = promisify(execFile);

export const KEPT_WORKSPACE_LABEL = 'disco-parrot.kept-workspace';
const KEPT_VOLUME_PREFIX = 'dp-ws-';

export const WORKSPACE_ERROR = {
  KEPT_VOLUME_FOREIGN: 'SANDBOX.KEPT_VOLUME_FOREIGN',
  KEPT_VOLUME_WITHOUT_WORKSPACE: 'SANDBOX.KEPT_VOLUME_WITHOUT_WORKSPACE',
  KEPT_VOLUME_CLAIMED: 'SANDBOX.KEPT_VOLUME_CLAIMED',
  KEPT_VOLUME_IN_USE: 'SANDBOX.KEPT_VOLUME_IN_USE',
} as const;

/** The kept volume of one workspace under one scope: a fixed prefix and a hash, so no id can shape the name. */
export function keptVolumeName(scope: string, workspaceId: string): string {
  return KEPT_VOLUME_PREFIX + createHash('sha256').update(`${scope}\0${workspaceId}`).digest('hex').slice(0, 40);
}

/**
 * The volume a sandbox of `workspaceId` may keep. A request naming any other workspace's volume is refused: the
 * name comes from the run's own workspace, and the volume found under it must carry that workspace's labels.
 */
export async function openKeptVolume(
  docker: Dockerode,
  scope: string,
  request: { readonly workspaceId?: string; readonly keptVolume: string },
  ids: UserNamespaceIds = NOT_REMAPPED,
): Promise<{ readonly volume: string; readonly dir: string }> {
  if (request.workspaceId === undefined)
    throw new DomainError(WORKSPACE_ERROR.KEPT_VOLUME_WITHOUT_WORKSPACE, 'a kept workspace volume belongs to a workspace: the request names none', 'invalid');
  if (request.keptVolume !== request.workspaceId)
    throw new DomainError(WORKSPACE_ERROR.KEPT_VOLUME_FOREIGN, "a run may keep only its own workspace's volume", 'forbidden');
  const volume = keptVolumeName(scope, request.workspaceId);
  const labels = { [LABEL.scope]: scope, [LABEL.workspace]: request.workspaceId, [KEPT_WORKSPACE_LABEL]: 'true' };
  // Creating a volume that exists returns it unchanged (labels included): the check below is what decides.
  await docker.createVolume({ Name: volume, Driver: 'local', Labels: labels });
  const found = (await docker.getVolume(volume).inspect()) as { Driver: string; Mountpoint: string; Labels: Record<string, string> | null; Options: Record<string, string> | null };
  const theirs = found.Labels ?? {};
  if (found.Driver !== 'local' || Object.keys(found.Options ?? {}).length > 0 || Object.entries(labels).some(([k, v]) => theirs[k] !== v))
    throw new DomainError(WORKSPACE_ERROR.KEPT_VOLUME_CLAIMED, 'the kept workspace volume exists with labels or options of something else: refused', 'conflict');
  const dir = found.Mountpoint;
  // A link planted in an earlier run cannot reach here (the mount point is the engine's), but stat it anyway.
  const stat = await lstat(dir);
  if (!stat.isDirectory()) throw new DomainError(WORKSPACE_ERROR.KEPT_VOLUME_CLAIMED, 'the kept workspace volume has no directory', 'conflict');
  await chown(dir, hostUid(ids, AGENT_UID), hostGid(ids, SANDBOX_GID));
  await chmod(dir, 0o2770);
  return { volume, dir };
}

/** Removes every kept volume of a workspace under this scope (purge); a volume a container still uses is an error, retried by the next sweep. */
export async function removeKeptVolumes(docker: Dockerode, scope: string, workspaceId: string): Promise<number> {
  const filters = { label: [`${LABEL.scope}=${scope}`, `${LABEL.workspace}=${workspaceId}`, `${KEPT_WORKSPACE_LABEL}=true`] };
  const { Volumes } = (await docker.listVolumes({ filters })) as { Volumes: { Name: string }[] | null };
  let removed = 0;
  for (const { Name } of Volumes ?? []) {
    try {
      await docker.getVolume(Name).remove();
      removed++;
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 404) continue;
      if (status === 409) throw new DomainError(WORKSPACE_ERROR.KEPT_VOLUME_IN_USE, 'a kept workspace volume is still in use by a sandbox', 'conflict');
      throw error;
    }
  }
  return removed;
}

async function mounted(dir: string): Promise<boolean> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with spaces and backslashes octal-escaped.
  return mountinfo.split('\n').some((line) => line.split(' ')[4]?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === dir);
}

/**
 * A tmpfs of `sizeBytes` at `dir`, the agent's (2770, the sandbox group's), nosuid and nodev. The host mounts it
 * (as root, in its own mount namespace, which the engine shares) so it sees what the sandbox sees at the same
 * path; the container gets it as a bind.
 */
export async function mountWorkspaceTmpfs(dir: string, sizeBytes: number, ids: UserNamespaceIds = NOT_REMAPPED): Promise<void> {
  await mkdir(dir, { mode: 0o700 });
  const options = `size=${Math.max(1, Math.floor(sizeBytes / 1024))}k,mode=2770,uid=${hostUid(ids, AGENT_UID)},gid=${hostGid(ids, SANDBOX_GID)},nosuid,nodev`;
  await run('mount', ['-t', 'tmpfs', '-o', options, 'dp-workspace', dir]);
}

/** Unmounts (lazily: a relay may still hold a file open) and removes a workspace directory; no-op when gone. */
export async function removeWorkspaceDir(dir: string): Promise<void> {
  if (await mounted(dir)) await run('umount', ['-l', dir]);
  await rm(dir, { recursive: true, force: true });
}

/** The kept volume's mount point of a sandbox container found by label (undefined: its workspace is a tmpfs). */
export function keptWorkspaceDir(container: Dockerode.ContainerInfo): string | undefined {
  return container.Mounts?.find((m) => m.Type === 'volume' && m.Name?.startsWith(KEPT_VOLUME_PREFIX))?.Destination;
}
