import { type CommandContext, fold } from '../commandHandler';
import type { DomainEvent } from '../events';
import type { CheckedProjection, ProjectionWrite } from '../ports/eventStore';
import { type SecretEvent, secretDecider, secretMetadata } from '../secret';
import { projectionKeys, secretStreamId, workspaceStreamId } from '../streams';
import { type WorkspaceEvent, workspaceDecider, workspaceSummary } from '../workspace';
import { onWorkspace } from './workspaceStream';

type Row = Readonly<Record<string, unknown>>;

/** The projections decisions read, with how each is folded again from its stream when its row is doubted. */
function sourceOf(workspaceId: string, key: string): { streamId: string; refold: (events: readonly DomainEvent[]) => Row } | undefined {
  if (key === projectionKeys.workspace)
    return { streamId: workspaceStreamId(workspaceId), refold: (events) => workspaceSummary(fold(workspaceDecider, events as readonly WorkspaceEvent[])) };
  if (key.startsWith(projectionKeys.secretPrefix))
    return {
      streamId: secretStreamId(workspaceId, key.slice(projectionKeys.secretPrefix.length)),
      refold: (events) => secretMetadata(fold(secretDecider, events as readonly SecretEvent[])),
    };
  return undefined;
}

const REPORTER = { actor: 'system:projectionCheck' } as const;

/**
 * A projection row a decision may rest on (membership and roles in the summary; a secret's existence, version,
 * `allowedHosts` and uses in its metadata). A row whose MAC and freshness hold is used as is; any other row is
 * set aside: the value is folded from the stream, `ProjectionMismatchDetected` is recorded on the workspace log
 * and the row is rewritten from the fold in the same append. A row no stream backs reads as absent.
 */
export async function readVerifiedProjection(deps: CommandContext, workspaceId: string, key: string): Promise<Row | undefined> {
  const row = await deps.store.readCheckedProjection(workspaceId, key);
  return row ? settle(deps, workspaceId, row) : undefined;
}

/** Every row under the prefix, each settled like `readVerifiedProjection`; rows no stream backs are left out. */
export async function listVerifiedProjections(deps: CommandContext, workspaceId: string, keyPrefix: string): Promise<readonly { key: string; value: Row }[]> {
  const rows = await deps.store.listCheckedProjections(workspaceId, keyPrefix);
  const settled = await Promise.all(rows.map(async (row) => ({ key: row.key, value: await settle(deps, workspaceId, row) })));
  return settled.filter((r): r is { key: string; value: Row } => r.value !== undefined);
}

async function settle(deps: CommandContext, workspaceId: string, row: CheckedProjection): Promise<Row | undefined> {
  const source = sourceOf(workspaceId, row.key);
  if (!source) throw new Error(`Projection ${row.key} is not one decisions may read`);
  const ownStream = row.derivedFrom?.streamId === source.streamId;
  if (row.check === 'verified' && ownStream) return row.value;
  const stream = await deps.store.readStream(workspaceId, source.streamId);
  const truth = stream.version === 0 ? undefined : source.refold(stream.events);
  if (row.check === 'stale' && ownStream) {
    // The stream moved without changing what the row shows, or an append landed between our two reads.
    if (truth !== undefined && sameJson(truth, row.value)) return truth;
    const again = await deps.store.readCheckedProjection(workspaceId, row.key);
    if (again?.check === 'verified' && again.derivedFrom?.streamId === source.streamId) return again.value;
  }
  const found = row.check === 'stale' && ownStream ? 'stale' : 'forged';
  const repaired: ProjectionWrite =
    truth === undefined
      ? { kind: 'delete', key: row.key }
      : { kind: 'upsert', key: row.key, value: truth, derivedFrom: { streamId: source.streamId, version: stream.version } };
  await onWorkspace(
    deps,
    workspaceId,
    { type: 'RecordProjectionMismatch', projection: row.key, found, streamId: source.streamId, streamVersion: stream.version },
    { ...REPORTER, correlationId: `projection:${row.key}` },
    // The summary is rewritten by every workspace append anyway; other rows are repaired beside the record.
    { alsoProject: row.key === projectionKeys.workspace ? [] : [repaired] },
  );
  return truth;
}

/** Equal as JSON values, whatever the order of object keys. */
export function sameJson(a: unknown, b: unknown): boolean {
  return stableText(JSON.parse(JSON.stringify(a)) as unknown) === stableText(JSON.parse(JSON.stringify(b)) as unknown);
}

function stableText(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableText).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableText((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}
