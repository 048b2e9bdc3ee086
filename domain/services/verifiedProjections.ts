import { type CommandContext, fold } from '../commandHandler';
import type { DomainEvent } from '../events';
import type { CheckedProjection, ProjectionWrite } from '../ports/eventStore';
import { type SecretEvent, type SecretMetadataView, secretDecider, secretMetadata, secretMetadataFromRow } from '../secret';
import { projectionKeys, secretStreamId, workspaceStreamId } from '../streams';
import { type WorkspaceEvent, type WorkspaceSummaryView, workspaceDecider, workspaceSummary, workspaceSummaryFromRow } from '../workspace';
import { onWorkspace } from './workspaceStream';

type Row = Readonly<Record<string, unknown>>;

/** A projection decisions read: the stream it is folded from, how it is folded again, and how a stored row reads. */
interface VerifiedSource<V> {
  readonly streamId: string;
  refold(events: readonly DomainEvent[]): V;
  fromRow(row: Row): V;
}

const workspaceSource = (workspaceId: string): VerifiedSource<WorkspaceSummaryView> => ({
  streamId: workspaceStreamId(workspaceId),
  refold: (events) => workspaceSummary(fold(workspaceDecider, events as readonly WorkspaceEvent[])),
  fromRow: workspaceSummaryFromRow,
});

const secretSource = (workspaceId: string, name: string): VerifiedSource<SecretMetadataView> => ({
  streamId: secretStreamId(workspaceId, name),
  refold: (events) => secretMetadata(fold(secretDecider, events as readonly SecretEvent[])),
  fromRow: secretMetadataFromRow,
});

/** The workspace summary (membership, roles, status, egress list) as decisions read it: checked against the log. */
export async function readVerifiedWorkspaceSummary(deps: CommandContext, workspaceId: string): Promise<WorkspaceSummaryView | undefined> {
  const row = await deps.store.readCheckedProjection(workspaceId, projectionKeys.workspace);
  return row ? settle(deps, workspaceId, row, workspaceSource(workspaceId)) : undefined;
}

/** A secret's metadata (existence, version, `allowedHosts`, uses) as decisions read it: checked against the log. */
export async function readVerifiedSecretMetadata(deps: CommandContext, workspaceId: string, name: string): Promise<SecretMetadataView | undefined> {
  const row = await deps.store.readCheckedProjection(workspaceId, projectionKeys.secret(name));
  return row ? settle(deps, workspaceId, row, secretSource(workspaceId, name)) : undefined;
}

/** Every secret's metadata row, each settled like a single read; rows no stream backs are left out. */
export async function listVerifiedSecretMetadata(deps: CommandContext, workspaceId: string): Promise<readonly SecretMetadataView[]> {
  const rows = await deps.store.listCheckedProjections(workspaceId, projectionKeys.secretPrefix);
  const settled = await Promise.all(
    rows.map((row) => settle(deps, workspaceId, row, secretSource(workspaceId, row.key.slice(projectionKeys.secretPrefix.length)))),
  );
  return settled.filter((view): view is SecretMetadataView => view !== undefined);
}

const REPORTER = { actor: 'system:projectionCheck' } as const;

/**
 * A projection row a decision may rest on (membership and roles in the summary; a secret's existence, version,
 * `allowedHosts` and uses in its metadata). A row whose MAC and freshness hold is used as is; any other row is
 * set aside: the value is folded from the stream, `ProjectionMismatchDetected` is recorded on the workspace log
 * and the row is rewritten from the fold in the same append. A row no stream backs reads as absent.
 */
async function settle<V extends object>(deps: CommandContext, workspaceId: string, row: CheckedProjection, source: VerifiedSource<V>): Promise<V | undefined> {
  const ownStream = row.derivedFrom?.streamId === source.streamId;
  if (row.check === 'verified' && ownStream) return source.fromRow(row.value);
  const stream = await deps.store.readStream(workspaceId, source.streamId);
  const truth = stream.version === 0 ? undefined : source.refold(stream.events);
  if (row.check === 'stale' && ownStream) {
    // The stream moved without changing what the row shows, or an append landed between our two reads.
    if (truth !== undefined && sameJson(truth, row.value)) return truth;
    const again = await deps.store.readCheckedProjection(workspaceId, row.key);
    if (again?.check === 'verified' && again.derivedFrom?.streamId === source.streamId) return source.fromRow(again.value);
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
