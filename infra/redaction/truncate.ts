import type { Redactor } from '../../domain/redaction';

export const TRUNCATION_MARKER = '[TRUNCATED]';

/** The longest prefix of `bytes` of at most `limit` bytes that does not end inside a UTF-8 sequence. */
export function utf8Prefix(bytes: Buffer, limit: number): Buffer {
  if (bytes.length <= limit) return bytes;
  let cut = Math.max(0, limit);
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--; // never split a character
  return bytes.subarray(0, cut);
}

/**
 * Redacts first, then cuts to at most `maxBytes` UTF-8 bytes, marker included. Cutting first could leave
 * the start of a value that the redactor then no longer recognises as one.
 */
export function redactThenTruncate(redactor: Redactor, text: string, maxBytes: number, marker = TRUNCATION_MARKER): string {
  const redacted = redactor.redact(text);
  const bytes = Buffer.from(redacted, 'utf8');
  if (bytes.length <= maxBytes) return redacted;
  const markerBytes = Buffer.byteLength(marker);
  if (markerBytes > maxBytes) return utf8Prefix(Buffer.from(marker), maxBytes).toString('utf8');
  return utf8Prefix(bytes, maxBytes - markerBytes).toString('utf8') + marker;
}
