import canonicalize from 'canonicalize';
import type { EventEnvelope, RecordedEvent } from '../../domain/events';
import type { Hasher } from '../../domain/ports/hasher';
import type { Ids } from '../../domain/ports/ids';

/** The `prevHash` of a workspace's first record. */
export const GENESIS_HASH = '0'.repeat(64);

export interface ChainHead {
  readonly sequence: number;
  readonly hash: string;
}

/** A record with the exact text the chain covers; the text is what gets stored and re-hashed by `verify`. */
export interface SealedRecord {
  readonly record: RecordedEvent;
  readonly stored: string;
}

export type Redact = (text: string) => string;

export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('Value has no JSON form');
  return text;
}

/** hash = SHA-256(prevHash ‖ stored bytes), hex; the concatenation is of the hex text and the UTF-8 JSON. */
export function chainHash(hasher: Hasher, prevHash: string, stored: string): string {
  return hasher.sha256Hex(prevHash + stored);
}

/**
 * Second line of defence (DESIGN.md §3): the caller's redactor sees each event's canonical `data` text.
 * Its replacements (`[REDACTED:NAME]`) keep JSON valid; if a redactor ever breaks it, the text is kept as
 * a string rather than dropping the event.
 */
function redactData(data: unknown, redact: Redact | undefined): unknown {
  if (!redact) return data;
  const text = canonicalJson(data ?? null);
  const redacted = redact(text);
  if (redacted === text) return data;
  try {
    return JSON.parse(redacted) as unknown;
  } catch {
    return { redacted };
  }
}

export interface SealInput {
  readonly workspaceId: string;
  readonly streamId: string;
  readonly expectedVersion: number;
  readonly events: readonly EventEnvelope[];
  readonly head: ChainHead;
  readonly ids: Ids;
  readonly hasher: Hasher;
  readonly redact?: Redact | undefined;
}

/** Gives each event its stream version, workspace sequence, canonical bytes and chained hash. */
export function sealRecords(input: SealInput): SealedRecord[] {
  let prevHash = input.head.hash;
  return input.events.map((event, i) => {
    const body = {
      id: input.ids.next(),
      workspaceId: input.workspaceId,
      streamId: input.streamId,
      streamVersion: input.expectedVersion + i + 1,
      sequence: input.head.sequence + i + 1,
      type: event.type,
      data: redactData(event.data, input.redact) ?? null,
      meta: event.meta,
    };
    const stored = canonicalJson(body);
    const hash = chainHash(input.hasher, prevHash, stored);
    const record = parseRecord(stored, prevHash, hash);
    prevHash = hash;
    return { record, stored };
  });
}

/** A record as read back: the stored text is the truth; hashes come from the row. */
export function parseRecord(stored: string, prevHash: string, hash: string): RecordedEvent {
  const body = JSON.parse(stored) as Omit<RecordedEvent, 'prevHash' | 'hash'>;
  return { ...body, prevHash, hash };
}
