/** Stream ids, built only here so no caller assembles one inline. */
export const workspaceStreamId = (workspaceId: string): string => `workspace:${workspaceId}`;
export const secretStreamId = (workspaceId: string, name: string): string => `secret:${workspaceId}:${name}`;
export const runStreamId = (runId: string): string => `run:${runId}`;
/** One refused request's record (domain/accessDenial.ts): a stream per denial, so recording one reads nothing. */
export const accessDeniedStreamId = (denialId: string): string => `denied:${denialId}`;
/** The run id of a run stream, undefined for any other stream. */
export const runIdOfStream = (streamId: string): string | undefined => (streamId.startsWith('run:') ? streamId.slice('run:'.length) : undefined);

/** Projection keys inside a workspace partition. */
export const projectionKeys = {
  workspace: 'workspace',
  secretPrefix: 'secret:',
  secret: (name: string): string => `secret:${name}`,
  runPrefix: 'run:',
  run: (runId: string): string => `run:${runId}`,
  hostPrefix: 'host:',
  host: (hostId: string): string => `host:${hostId}`,
  deletedWorkspacePrefix: 'deleted:',
  deletedWorkspace: (workspaceId: string): string => `deleted:${workspaceId}`,
} as const;

/**
 * The platform's own partition: its signing-key log and the index of deleted workspaces awaiting purge. Workspace
 * ids are generated UUIDs, so this id can never be a workspace's; no member is ever added to it, so no API caller
 * can read or verify it through the workspace routes.
 */
export const PLATFORM_PARTITION = 'platform';
/** The stream of signing-key rotations in the platform partition: version n made generation n current. */
export const signingKeysStreamId = (): string => 'platform:signing-keys';
/** The RS256 workload identity ring's rotations (docs/identity.md), recorded the same way. */
export const workloadIdentityKeysStreamId = (): string => 'platform:workload-identity-keys';

/** The stream a workspace-partition projection row is folded from, or undefined for rows of no stream. */
export function projectionSource(workspaceId: string, key: string): string | undefined {
  if (key === projectionKeys.workspace) return workspaceStreamId(workspaceId);
  if (key.startsWith(projectionKeys.secretPrefix)) return secretStreamId(workspaceId, key.slice(projectionKeys.secretPrefix.length));
  if (key.startsWith(projectionKeys.runPrefix)) return runStreamId(key.slice(projectionKeys.runPrefix.length));
  if (key.startsWith(projectionKeys.hostPrefix)) return sandboxHostStreamId(workspaceId, key.slice(projectionKeys.hostPrefix.length));
  return undefined;
}
/** A sandbox host's stream (domain/sandboxHosts.ts) in its workspace's partition; managed hosts use PLATFORM_PARTITION. */
export const sandboxHostStreamId = (workspaceId: string, hostId: string): string => `host:${workspaceId}:${hostId}`;
export const sandboxHostStreamPrefix = (workspaceId: string): string => `host:${workspaceId}:`;
