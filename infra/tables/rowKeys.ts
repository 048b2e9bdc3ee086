/**
 * RowKeys inside one workspace partition (DESIGN.md §3). Numbers are zero-padded to ten digits so that
 * lexical order is numeric order; free text (stream ids, projection keys) is escaped so it can never hold
 * a character Table storage forbids in keys (`/ \ # ?`, control characters) nor our own `:` separator.
 */
export const HEAD_ROW_KEY = 'head';
const SEQUENCE_DIGITS = 10;

export function pad(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 10 ** SEQUENCE_DIGITS) throw new RangeError(`Cannot pad ${n}`);
  return String(n).padStart(SEQUENCE_DIGITS, '0');
}

/** Keeps `[A-Za-z0-9_.-]`; every other UTF-16 unit becomes `~xxxx`. Per character, so prefixes survive. */
export function escapeKeyPart(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    out += /[A-Za-z0-9_.-]/.test(ch) ? ch : `~${text.charCodeAt(i).toString(16).padStart(4, '0')}`;
  }
  return out;
}

export const eventRowKey = (sequence: number): string => `e:${pad(sequence)}`;
export const outboxRowKey = (sequence: number): string => `o:${pad(sequence)}`;
export const streamRowKey = (streamId: string, version: number): string => `s:${escapeKeyPart(streamId)}:${pad(version)}`;
export const projectionRowKey = (key: string): string => `p:${escapeKeyPart(key)}`;

export function sequenceOf(rowKey: string): number {
  return Number(rowKey.slice(rowKey.lastIndexOf(':') + 1));
}

/** `[from, to)`: every RowKey that starts with `prefix` (the last character bumped by one is the bound). */
export interface KeyRange {
  readonly from: string;
  readonly to: string;
}

export function prefixRange(prefix: string): KeyRange {
  const last = prefix.charCodeAt(prefix.length - 1);
  return { from: prefix, to: prefix.slice(0, -1) + String.fromCharCode(last + 1) };
}

export const eventRange = (after = 0): KeyRange => ({ from: eventRowKey(after + 1), to: prefixRange('e:').to });
export const streamRange = (streamId: string, afterVersion = 0): KeyRange => ({
  from: streamRowKey(streamId, afterVersion + 1),
  to: prefixRange(`s:${escapeKeyPart(streamId)}:`).to,
});
export const allStreamsRange = (): KeyRange => prefixRange('s:');
export const projectionRange = (keyPrefix: string): KeyRange =>
  keyPrefix === '' ? prefixRange('p:') : prefixRange(projectionRowKey(keyPrefix));
