import type { HeadCheckpointer, VerifyResult, WitnessedHead } from '../../domain/ports/eventStore';
import type { Hasher } from '../../domain/ports/hasher';
import { GENESIS_HASH, chainHash } from './logRecord';

/** One `e:` row as stored: its sequence comes from the RowKey, the rest from its properties. */
export interface ChainRow {
  readonly sequence: number;
  readonly stored: string;
  readonly prevHash: string;
  readonly hash: string;
  /** Signature of the head as it was after the append this record ended. */
  readonly checkpoint?: string | undefined;
}

/** One `s:` row: a copy of the record, addressed by stream and version. */
export interface IndexRow {
  readonly streamId: string;
  readonly streamVersion: number;
  readonly sequence: number;
  readonly stored: string;
  readonly prevHash: string;
  readonly hash: string;
}

export interface HeadRow {
  readonly sequence: number;
  readonly hash: string;
  readonly signature?: string | undefined;
}

export interface VerifyInput {
  readonly workspaceId: string;
  readonly rows: AsyncIterable<ChainRow> | Iterable<ChainRow>;
  readonly index: AsyncIterable<IndexRow> | Iterable<IndexRow>;
  readonly head: HeadRow | undefined;
  readonly hasher: Hasher;
  readonly checkpointer?: HeadCheckpointer | undefined;
  /** The latest head witnessed outside the table: the log must reach it, with the same hash. */
  readonly witnessed?: WitnessedHead | undefined;
}

interface Break {
  readonly at: number;
  readonly reason: string;
}

interface Body {
  readonly sequence?: unknown;
  readonly workspaceId?: unknown;
  readonly streamId?: unknown;
  readonly streamVersion?: unknown;
}

function parseBody(stored: string): Body | undefined {
  try {
    const value = JSON.parse(stored) as unknown;
    return typeof value === 'object' && value !== null ? (value as Body) : undefined;
  } catch {
    return undefined;
  }
}

const earliest = (a: Break | undefined, b: Break | undefined): Break | undefined =>
  !a ? b : !b ? a : b.at < a.at ? b : a;

/**
 * Walks the log from sequence 1: continuity, what each record claims about itself, prevHash linkage, the
 * recomputed hash, signed checkpoints; then the head row and the stream index. Reports the earliest break.
 */
export async function verifyChain(input: VerifyInput): Promise<VerifyResult> {
  const { hasher, checkpointer, workspaceId } = input;
  const byStreamVersion = new Map<string, { sequence: number; hash: string }>();
  const streamVersions = new Map<string, number>();
  let expected = 1;
  let prev = GENESIS_HASH;
  let chainBreak: Break | undefined;
  let hashAtWitness: string | undefined;
  for await (const row of input.rows) {
    const fail = (reason: string): Break => ({ at: expected, reason });
    if (row.sequence !== expected) {
      chainBreak = fail(`record ${expected} is missing (next row is ${row.sequence})`);
      break;
    }
    const body = parseBody(row.stored);
    if (!body) {
      chainBreak = fail('stored bytes are not a JSON record');
      break;
    }
    if (body.sequence !== expected || body.workspaceId !== workspaceId) {
      chainBreak = fail(`row holds record ${String(body.sequence)} of workspace ${String(body.workspaceId)}`);
      break;
    }
    if (row.prevHash !== prev) {
      chainBreak = fail('prevHash does not link to the previous record');
      break;
    }
    const hash = chainHash(hasher, prev, row.stored);
    if (hash !== row.hash) {
      chainBreak = fail('hash does not match the stored bytes');
      break;
    }
    if (checkpointer && row.checkpoint !== undefined && !(await checkpointer.verify({ workspaceId, sequence: expected, hash }, row.checkpoint))) {
      chainBreak = fail('checkpoint signature does not verify');
      break;
    }
    const streamId = String(body.streamId);
    const version = (streamVersions.get(streamId) ?? 0) + 1;
    if (body.streamVersion !== version) {
      chainBreak = fail(`stream ${streamId} jumps to version ${String(body.streamVersion)} (expected ${version})`);
      break;
    }
    streamVersions.set(streamId, version);
    byStreamVersion.set(`${streamId}\n${version}`, { sequence: expected, hash });
    if (expected === input.witnessed?.sequence) hashAtWitness = hash;
    prev = hash;
    expected++;
  }
  const last = expected - 1;
  if (!chainBreak) chainBreak = await checkHead(input, last, prev);
  const indexBreak = await checkIndex(input, byStreamVersion, chainBreak ? chainBreak.at - 1 : last);
  const witnessBreak = await checkWitness(input, last, hashAtWitness);
  const broken = earliest(earliest(chainBreak, indexBreak), witnessBreak);
  if (!broken) return { ok: true, records: last, headSequence: input.head?.sequence ?? 0 };
  return { ok: false, records: Math.min(last, broken.at - 1), brokenAt: broken.at, reason: broken.reason };
}

async function checkHead(input: VerifyInput, last: number, lastHash: string): Promise<Break | undefined> {
  const { head, checkpointer, workspaceId } = input;
  if (!head) return last === 0 ? undefined : { at: last, reason: 'head row is missing' };
  if (head.sequence > last) return { at: last + 1, reason: `log ends at ${last} but the head says ${head.sequence}` };
  if (head.sequence < last) return { at: head.sequence + 1, reason: `records beyond the head (${head.sequence})` };
  if (head.hash !== lastHash) return { at: last, reason: 'head hash does not match the last record' };
  if (checkpointer && last > 0) {
    if (head.signature === undefined) return { at: last, reason: 'head is not signed' };
    if (!(await checkpointer.verify({ workspaceId, sequence: last, hash: lastHash }, head.signature)))
      return { at: last, reason: 'head signature does not verify' };
  }
  return undefined;
}

/**
 * The table alone cannot tell a log truncated back to an earlier signed head from one that ended there: every
 * remaining checkpoint verifies. A head witnessed outside the table (immutable storage) can.
 */
async function checkWitness(input: VerifyInput, last: number, hashAtWitness: string | undefined): Promise<Break | undefined> {
  const { witnessed, checkpointer, workspaceId } = input;
  if (!witnessed) return undefined;
  const head = { workspaceId, sequence: witnessed.sequence, hash: witnessed.hash };
  if (witnessed.workspaceId !== workspaceId || (checkpointer && !(await checkpointer.verify(head, witnessed.signature))))
    return { at: Math.min(witnessed.sequence, last + 1), reason: `the head witnessed outside the table (${witnessed.sequence}) does not verify` };
  if (witnessed.sequence > last)
    return { at: last + 1, reason: `log ends at ${last} but its head was witnessed at ${witnessed.sequence} outside the table: truncated or rolled back` };
  if (hashAtWitness !== undefined && hashAtWitness !== witnessed.hash)
    return { at: witnessed.sequence, reason: `record ${witnessed.sequence} differs from the head witnessed outside the table: the log was rewritten` };
  return undefined;
}

async function checkIndex(
  input: VerifyInput,
  records: Map<string, { sequence: number; hash: string }>,
  verifiedUpTo: number,
): Promise<Break | undefined> {
  let found: Break | undefined;
  const seen = new Set<string>();
  for await (const row of input.index) {
    const key = `${row.streamId}\n${row.streamVersion}`;
    const record = records.get(key);
    seen.add(key);
    if (!record) {
      if (row.sequence <= verifiedUpTo)
        found = earliest(found, { at: row.sequence, reason: `stream index ${row.streamId}@${row.streamVersion} points to no record` });
      continue;
    }
    if (row.sequence !== record.sequence || row.hash !== record.hash || chainHash(input.hasher, row.prevHash, row.stored) !== record.hash)
      found = earliest(found, { at: record.sequence, reason: `stream index ${row.streamId}@${row.streamVersion} does not match its record` });
  }
  for (const [key, record] of records)
    if (!seen.has(key)) found = earliest(found, { at: record.sequence, reason: `stream index row for ${key.replace('\n', '@')} is missing` });
  return found;
}
