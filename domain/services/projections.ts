import { fold } from '../commandHandler';
import type { DomainEvent, RecordedEvent } from '../events';
import type { EventStore, ProjectionWrite } from '../ports/eventStore';
import { type RunEvent, runDecider } from '../run';
import { type SecretEvent, secretDecider } from '../secret';
import { type WorkspaceEvent, workspaceDecider } from '../workspace';
import { projectRun } from './runStream';
import { projectSecret } from './secretStream';
import { projectWorkspace } from './workspaceStream';

/** How each kind of stream becomes its projection rows; the same functions the command handlers use. */
function projectStream(streamId: string, events: readonly DomainEvent[]): readonly ProjectionWrite[] {
  if (streamId.startsWith('workspace:')) return projectWorkspace(fold(workspaceDecider, events as readonly WorkspaceEvent[]));
  if (streamId.startsWith('secret:')) return projectSecret(fold(secretDecider, events as readonly SecretEvent[]));
  if (streamId.startsWith('run:')) return projectRun(fold(runDecider, events as readonly RunEvent[]));
  return [];
}

/** Rebuilds every projection of a workspace by replaying its log, oldest first. */
export async function rebuildProjections(store: EventStore, workspaceId: string): Promise<readonly ProjectionWrite[]> {
  const streams = new Map<string, RecordedEvent[]>();
  let after = 0;
  for (;;) {
    const page = await store.readLog(workspaceId, { after, limit: 1000 });
    for (const record of page.records) {
      const list = streams.get(record.streamId) ?? [];
      list.push(record);
      streams.set(record.streamId, list);
    }
    if (page.next === undefined) break;
    after = page.next;
  }
  // Each row is bound to the stream version it was folded at, so the store seals it like an appended one.
  return [...streams.entries()].flatMap(([streamId, events]) =>
    projectStream(streamId, events).map((write) => (write.kind === 'upsert' ? { ...write, derivedFrom: { streamId, version: events.length } } : write)),
  );
}
