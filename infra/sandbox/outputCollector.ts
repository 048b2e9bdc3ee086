import { StringDecoder } from 'node:string_decoder';
import type { OutputRedactor } from '../../domain/ports/sandboxHost';

/**
 * One output stream of one process: bytes → text → the workspace's redactor (stream form, so a value split
 * across chunks is still caught) → kept up to `limit` bytes. Truncation happens only after redaction, so a
 * cut can never expose part of a value.
 */
export class OutputCollector {
  private readonly decoder = new StringDecoder('utf8');
  private readonly redacting: ReturnType<OutputRedactor['stream']>;
  private readonly kept: string[] = [];
  private bytes = 0;
  private ended = false;
  truncated = false;

  constructor(
    redactor: OutputRedactor,
    private readonly limit: number,
    private readonly onText?: (text: string) => void,
  ) {
    this.redacting = redactor.stream();
  }

  push(chunk: Buffer): void {
    if (this.ended) return;
    this.keep(this.redacting.push(this.decoder.write(chunk)));
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    const tail = this.decoder.end();
    this.keep((tail ? this.redacting.push(tail) : '') + this.redacting.end());
  }

  text(): string {
    return this.kept.join('');
  }

  private keep(safe: string): void {
    if (safe === '') return;
    this.onText?.(safe);
    const remaining = this.limit - this.bytes;
    if (remaining <= 0) {
      this.truncated = true;
      return;
    }
    const encoded = Buffer.from(safe, 'utf8');
    if (encoded.length <= remaining) {
      this.kept.push(safe);
      this.bytes += encoded.length;
      return;
    }
    // Cut on a character boundary: the decoder drops an incomplete trailing sequence.
    const cut = new StringDecoder('utf8').write(encoded.subarray(0, remaining));
    this.kept.push(cut);
    this.bytes = this.limit;
    this.truncated = true;
  }
}
