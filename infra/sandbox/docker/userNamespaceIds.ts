import type Dockerode from 'dockerode';

/**
 * How the engine's containers' uids and gids appear on this host. Without user-namespace remapping they are the
 * same numbers; with `userns-remap` the kernel maps each container id into a subordinate range (the remap user's
 * /etc/subuid and /etc/subgid lines, `dockremap` by default), so container uid 60001 is host uid base + 60001.
 * Everything this host gives the sandbox on its side (the workspace tmpfs, a kept volume, credential, door and
 * process directories, delivered files) is owned through `hostUid`/`hostGid`; nothing inside the container is.
 *
 * The ranges are read from the kernel, not from /etc/subuid: a probe container prints its own /proc/self/uid_map
 * and gid_map, whose second column is the host id (the engine runs in this host's initial user namespace, on this
 * machine, as the bind mounts already require). /etc/subuid is what dockerd read when it started and may have
 * changed since, or name another user; the map is what the kernel applies. SANDBOX_USERNS_BASE (`<uid>` or
 * `<uid>:<gid>`), when set, must agree with the probe, or the host refuses to start.
 */
export interface IdRange {
  /** First id inside the container. */
  readonly inside: number;
  /** First id on this host. */
  readonly outside: number;
  readonly count: number;
}

export interface UserNamespaceIds {
  /** Identity (no ranges): the engine does not remap. */
  readonly uidRanges: readonly IdRange[];
  readonly gidRanges: readonly IdRange[];
}

export const NOT_REMAPPED: UserNamespaceIds = { uidRanges: [], gidRanges: [] };

function toHost(ranges: readonly IdRange[], id: number, kind: string): number {
  if (ranges.length === 0) return id;
  const range = ranges.find((r) => id >= r.inside && id < r.inside + r.count);
  if (!range) throw new Error(`container ${kind} ${id} has no host ${kind} under the engine's user-namespace map`);
  return range.outside + (id - range.inside);
}

function toContainer(ranges: readonly IdRange[], id: number): number | undefined {
  if (ranges.length === 0) return id;
  const range = ranges.find((r) => id >= r.outside && id < r.outside + r.count);
  return range ? range.inside + (id - range.outside) : undefined;
}

/** The host uid a container uid runs as (and owns files as) on this side. */
export function hostUid(ids: UserNamespaceIds, containerUid: number): number {
  return toHost(ids.uidRanges, containerUid, 'uid');
}

export function hostGid(ids: UserNamespaceIds, containerGid: number): number {
  return toHost(ids.gidRanges, containerGid, 'gid');
}

/** The container uid a host uid is, or undefined when it is none of the container's. */
export function containerUid(ids: UserNamespaceIds, uid: number): number | undefined {
  return toContainer(ids.uidRanges, uid);
}

/** Parses /proc/<pid>/uid_map or gid_map text (`inside outside count` per line). */
export function parseIdMap(text: string): IdRange[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number))
    .filter((fields) => fields.length === 3 && fields.every((n) => Number.isSafeInteger(n) && n >= 0))
    .map(([inside = 0, outside = 0, count = 0]) => ({ inside, outside, count }));
}

/** SANDBOX_USERNS_BASE: `<uid>` or `<uid>:<gid>`; undefined when unset. */
export function parseUsernsBase(value: string | undefined): { readonly uid: number; readonly gid: number } | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const match = /^(\d+)(?::(\d+))?$/.exec(value.trim());
  if (!match) throw new Error(`SANDBOX_USERNS_BASE must be <uid> or <uid>:<gid>, not ${JSON.stringify(value)}`);
  const uid = Number(match[1]);
  return { uid, gid: match[2] !== undefined ? Number(match[2]) : uid };
}

/**
 * Reads the engine's maps from a probe container of `image` (no network, nothing mounted, every capability
 * dropped), and checks them against `expectedBase` (SANDBOX_USERNS_BASE) when given. Throws one line naming what
 * is wrong: no map, a map that does not cover the sandbox's ids, or a base other than the one configured.
 */
export async function probeUserNamespaceIds(
  docker: Dockerode,
  image: string,
  required: readonly number[],
  expectedBase?: { readonly uid: number; readonly gid: number },
): Promise<UserNamespaceIds> {
  const container = await docker.createContainer({
    Image: image, Cmd: ['/bin/sh', '-c', 'cat /proc/self/uid_map; echo --; cat /proc/self/gid_map'], User: '65534:65534',
    HostConfig: { NetworkMode: 'none', CapDrop: ['ALL'], ReadonlyRootfs: true, LogConfig: { Type: 'json-file', Config: {} } },
  });
  let output: string;
  try {
    await container.start();
    await container.wait();
    output = demultiplexed(await container.logs({ stdout: true, stderr: false }));
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
  const [uidText = '', gidText = ''] = output.split(/^\s*--\s*$/m);
  const ids: UserNamespaceIds = { uidRanges: parseIdMap(uidText), gidRanges: parseIdMap(gidText) };
  if (ids.uidRanges.length === 0 || ids.gidRanges.length === 0) throw new Error('the engine remaps user namespaces, but a container showed no uid or gid map');
  for (const id of required) {
    hostUid(ids, id);
    hostGid(ids, id);
  }
  if (expectedBase && (hostUid(ids, 0) !== expectedBase.uid || hostGid(ids, 0) !== expectedBase.gid))
    throw new Error(`SANDBOX_USERNS_BASE is ${expectedBase.uid}:${expectedBase.gid}, but the engine maps container root to ${hostUid(ids, 0)}:${hostGid(ids, 0)}`);
  return ids;
}

/** The payload of a non-TTY log stream: frames of an 8-byte header (stream, 0, 0, 0, big-endian size) and data. */
function demultiplexed(logs: Buffer): string {
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= logs.length; ) {
    const size = logs.readUInt32BE(at + 4);
    parts.push(logs.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}
