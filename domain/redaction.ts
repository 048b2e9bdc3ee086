import { DomainError } from './errors';
import { type Pattern, PatternPrefixes } from './redaction/patternPrefixes';
import { buildWindowIndex } from './redaction/windowIndex';
import { utf8Length } from './redaction/bytes';
import { encodedForms } from './redaction/encodings';
import { Scanner } from './redaction/scanner';
import { MIN_SECRET_BYTES, SECRET_VALUE_TOO_SHORT } from './secret';
import { REDACTION_ERROR } from './catalogue';

export { encodedForms } from './redaction/encodings';

/** A value to mask and the name its mask shows. Several entries may share a name (a rotation window). */
export interface RedactableSecret {
  readonly name: string;
  readonly value: string;
}

export interface RedactorOptions {
  /** Values (and lines of multi-line values) shorter than this many UTF-8 bytes cannot be masked reliably. */
  readonly minLength?: number;
}

export interface RedactionStream {
  /** Returns the redacted text that can no longer be part of a match; holds back the rest. */
  push(chunk: string): string;
  /** Returns everything held back, redacted; the stream is then ready for new text. */
  end(): string;
}

export interface Redactor {
  redact(text: string): string;
  /** Whether `text` contains any value in any of its forms: what the launch guard asks of an env value. */
  matches(text: string): boolean;
  stream(): RedactionStream;
  /** How many distinct strings the redactor looks for (all values, lines and encodings). */
  readonly patternCount: number;
}

/**
 * Refuses values the redactor could not mask reliably, naming the secrets and never printing a value. The
 * vault's `set` can call this so that nothing stored is unmaskable.
 */
export function assertRedactable(secrets: readonly RedactableSecret[], minLength: number = MIN_SECRET_BYTES): void {
  const tooShort = [...new Set(secrets.filter((s) => utf8Length(s.value) < minLength).map((s) => s.name))];
  if (tooShort.length > 0)
    throw new DomainError(
      SECRET_VALUE_TOO_SHORT,
      `Cannot redact ${tooShort.join(', ')}: shorter than the minimum of ${minLength} bytes, so masking it would be unreliable`,
      'invalid',
    );
}

export function maskFor(name: string): string {
  return `[REDACTED:${name}]`;
}

/**
 * Indexes every value of every secret in every encoded form (redaction/windowIndex.ts), so redacting is one
 * pass over the text whatever the number of secrets. Masks read `[REDACTED:NAME]`; where occurrences overlap
 * or touch they become one mask, named after the longest occurrence (ties: the name sorting first).
 */
export function createRedactor(secrets: readonly RedactableSecret[], options: RedactorOptions = {}): Redactor {
  const minLength = options.minLength ?? MIN_SECRET_BYTES;
  if (!Number.isInteger(minLength) || minLength < 1)
    throw new DomainError(REDACTION_ERROR.INVALID_MIN_LENGTH, 'The redactor minimum must be a positive whole number of bytes', 'invalid');
  assertRedactable(secrets, minLength);

  const names = [...new Set(secrets.map((s) => s.name))].sort();
  const index = new Map(names.map((name, i) => [name, i]));
  const owner = new Map<string, number>();
  for (const { name, value } of secrets) {
    const secret = index.get(name)!;
    for (const form of encodedForms(value, minLength)) {
      const current = owner.get(form);
      if (current === undefined || secret < current) owner.set(form, secret);
    }
  }
  const patterns: Pattern[] = [...owner].map(([text, secret]) => ({ text, secret }));
  const prefixes = new PatternPrefixes(patterns);
  const windows = buildWindowIndex(patterns);
  const masks = names.map(maskFor);

  // One scanner for every whole-text call, reset after each (the calls are synchronous), rather than one per
  // call. Besides the allocation, a redactor then always holds a scanner: when a full GC found none alive,
  // V8 dropped the scanner's hidden classes, deoptimized the scanning code and cleared its type feedback, and
  // the next calls ran 2-3x slower until it re-optimized (a stream, one call per chunk, suffered most).
  let whole = new Scanner(prefixes, windows, masks);
  const once = <T>(use: (scanner: Scanner) => T): T => {
    try {
      return use(whole);
    } catch (error) {
      // Only an engine limit (a result longer than a string can be) throws mid-scan: start clean next time.
      whole = new Scanner(prefixes, windows, masks);
      throw error;
    }
  };
  return {
    redact: (text) => once((scanner) => scanner.feed(text, true)),
    matches: (text) => once((scanner) => scanner.contains(text)),
    stream: () => {
      const scanner = new Scanner(prefixes, windows, masks);
      return { push: (chunk) => scanner.feed(chunk, false), end: () => scanner.feed('', true) };
    },
    patternCount: patterns.length,
  };
}
