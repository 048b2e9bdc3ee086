import type { OutputRedactor } from '../ports/sandboxHost';
import { createRedactor, type RedactableSecret, type Redactor } from '../redaction';

/**
 * A run's redactor that learns values after seed: a lease that resolves a rotated value, or the run's own
 * gateway bearer. Streams opened before a value was added keep the redactor they started with; a process
 * can only print values it holds, and it never holds one delivered after it started.
 */
export class RefreshableRedactor implements OutputRedactor {
  private readonly known: RedactableSecret[];
  private current: Redactor;

  constructor(initial: readonly RedactableSecret[]) {
    this.known = [...initial];
    this.current = createRedactor(this.known);
  }

  add(name: string, value: string): void {
    if (this.known.some((k) => k.name === name && k.value === value)) return;
    this.known.push({ name, value });
    this.current = createRedactor(this.known);
  }

  redact(text: string): string {
    return this.current.redact(text);
  }

  stream(): { push(chunk: string): string; end(): string } {
    return this.current.stream();
  }
}
