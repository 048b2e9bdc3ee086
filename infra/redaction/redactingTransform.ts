import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { RedactionStream, Redactor } from '../../domain/redaction';
import { TRUNCATION_MARKER, utf8Prefix } from './truncate';

export interface RedactingTransformOptions {
  /** Cap on the bytes written, marker included; counted on redacted output, never on the raw input. */
  readonly maxBytes?: number;
  readonly truncationMarker?: string;
}

/**
 * Bytes in, redacted UTF-8 bytes out. Chunks may split a multi-byte character (the decoder carries the
 * partial bytes) and a value (the redaction stream holds back a possible start). Invalid UTF-8 decodes to
 * U+FFFD, as everywhere else in Node.
 */
export class RedactingTransform extends Transform {
  private readonly decoder = new StringDecoder('utf8');
  private readonly redaction: RedactionStream;
  /** A high surrogate held back so a pair is never written as two halves (each would become U+FFFD). */
  private carry = '';
  private readonly maxBytes: number;
  private readonly marker: Buffer;
  private written = 0;
  /** Bytes past maxBytes - marker: written if the stream ends within maxBytes, else replaced by the marker. */
  private overflow: Buffer[] = [];
  private overflowBytes = 0;
  private truncated = false;

  constructor(redactor: Redactor, options: RedactingTransformOptions = {}) {
    super();
    this.redaction = redactor.stream();
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.marker = Buffer.from(options.truncationMarker ?? TRUNCATION_MARKER, 'utf8');
    if (this.maxBytes < 0 || Number.isNaN(this.maxBytes)) throw new RangeError('maxBytes must be zero or more');
  }

  override _transform(chunk: Buffer | string, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.truncated) this.deliver(this.redaction.push(typeof chunk === 'string' ? chunk : this.decoder.write(chunk)));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (!this.truncated) {
      const rest = this.redaction.push(this.decoder.end()) + this.redaction.end();
      this.deliver(rest, true);
      if (!this.truncated) for (const part of this.overflow) this.push(part);
    }
    callback();
  }

  private deliver(text: string, last = false): void {
    let out = this.carry + text;
    this.carry = '';
    const lastUnit = out.charCodeAt(out.length - 1);
    if (!last && lastUnit >= 0xd800 && lastUnit <= 0xdbff) {
      this.carry = out.slice(-1);
      out = out.slice(0, -1);
    }
    if (out.length === 0) return;
    const bytes = Buffer.from(out, 'utf8');
    if (this.maxBytes === Number.POSITIVE_INFINITY) {
      this.push(bytes);
      return;
    }
    const budget = Math.max(0, this.maxBytes - this.marker.length);
    const fits = utf8Prefix(bytes, Math.max(0, budget - this.written));
    if (fits.length > 0 && this.overflowBytes === 0) {
      this.push(fits);
      this.written += fits.length;
    }
    const beyond = this.overflowBytes === 0 ? bytes.subarray(fits.length) : bytes;
    if (beyond.length === 0) return;
    this.overflow.push(beyond);
    this.overflowBytes += beyond.length;
    if (this.written + this.overflowBytes > this.maxBytes) {
      this.truncated = true;
      this.overflow = [];
      this.push(utf8Prefix(this.marker, this.maxBytes - this.written));
    }
  }
}

export function redactingTransform(redactor: Redactor, options?: RedactingTransformOptions): RedactingTransform {
  return new RedactingTransform(redactor, options);
}
