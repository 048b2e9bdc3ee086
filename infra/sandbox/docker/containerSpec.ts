import type Dockerode from 'dockerode';
import { AGENT_HOME, AGENT_UID, CONTAINER_CMD, DOOR_UID, DOORS_DIR, SANDBOX_GID } from './imageFiles';

/** Labels every sandbox container carries; `scope` separates hosts (or test suites) sharing one engine. */
export const LABEL = {
  scope: 'disco-parrot.scope',
  workspace: 'disco-parrot.workspace',
  run: 'disco-parrot.run',
  sandbox: 'disco-parrot.sandbox',
} as const;

export interface ContainerLimits {
  readonly memoryBytes: number;
  readonly nanoCpus: number;
  readonly pids: number;
  /** The size of a workspace's own tmpfs (a kept volume has no quota on the engine's local driver). */
  readonly workspaceBytes: number;
}

export const DEFAULT_LIMITS: ContainerLimits = { memoryBytes: 1024 * 1024 * 1024, nanoCpus: 1_000_000_000, pids: 256, workspaceBytes: 1024 * 1024 * 1024 };

export interface ContainerSpecInput {
  readonly image: string;
  readonly scope: string;
  readonly sandboxId: string;
  readonly runId: string;
  readonly workspaceId?: string;
  /** Host directory with the door sockets and doors.json, mounted at DOORS_DIR. */
  readonly doorsDir: string;
  /** Host tmpfs directory for per-process credential material, mounted at the same path. */
  readonly credentialDir: string;
  /** Host tmpfs directory of the workspace (2770, the agent's, the sandbox group's), mounted at the same path. */
  readonly workspace: string;
  /** The workspace's kept volume (workspaceStorage.ts), mounted at `workspace` (its mount point) instead of a bind. */
  readonly keptVolume?: string;
  readonly limits: ContainerLimits;
}

/**
 * One sandbox container. Nothing here carries a value: no Env, a fixed command, labels with ids only. The
 * agent's workspace and home and every credential file live on tmpfs (never in the engine's data root; the
 * workspace and credential directories are the host's, mounted at the same path);
 * the root is read-only, every capability is dropped, privileges cannot be regained, the default seccomp
 * profile applies, and the only network is loopback, where the doors forward to the host's unix sockets.
 */
export function containerSpec(input: ContainerSpecInput): Dockerode.ContainerCreateOptions {
  const labels: Record<string, string> = { [LABEL.scope]: input.scope, [LABEL.run]: input.runId, [LABEL.sandbox]: input.sandboxId };
  if (input.workspaceId !== undefined) labels[LABEL.workspace] = input.workspaceId;
  return {
    name: `dp-${input.sandboxId}`,
    Image: input.image,
    Cmd: [...CONTAINER_CMD],
    Env: [],
    User: `${DOOR_UID}:${DOOR_UID}`,
    WorkingDir: '/',
    Labels: labels,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    OpenStdin: false,
    Tty: false,
    HostConfig: {
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      // docker-init reaps what the sandbox's processes orphan (the forwarder would not).
      Init: true,
      IpcMode: 'private',
      Tmpfs: {
        [AGENT_HOME]: `rw,nosuid,nodev,size=67108864,mode=0700,uid=${AGENT_UID},gid=${SANDBOX_GID}`,
        '/tmp': 'rw,nosuid,nodev,size=268435456,mode=1777',
      },
      Binds: [`${input.doorsDir}:${DOORS_DIR}:rw`, `${input.credentialDir}:${input.credentialDir}:rw`, ...(input.keptVolume ? [] : [`${input.workspace}:${input.workspace}:rw`])],
      // A volume mount (not a bind of its directory): the engine then refuses to remove it while this container lives.
      ...(input.keptVolume ? { Mounts: [{ Type: 'volume' as const, Source: input.keptVolume, Target: input.workspace, ReadOnly: false }] } : {}),
      PidsLimit: input.limits.pids,
      Memory: input.limits.memoryBytes,
      MemorySwap: input.limits.memoryBytes,
      NanoCpus: input.limits.nanoCpus,
      LogConfig: { Type: 'none', Config: {} },
      RestartPolicy: { Name: 'no' },
    },
  };
}
