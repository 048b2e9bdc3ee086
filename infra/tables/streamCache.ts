import type { RecordedEvent } from '../../domain/events';

/**
 * Stream rows are append-only, so a prefix once read stays true; keeping it lets `readStream` ask the table
 * only for versions after the cached ones. Bounded by the stored text it holds, least recently used first out.
 */
export class StreamCache {
  private readonly entries = new Map<string, { records: readonly RecordedEvent[]; units: number }>();
  private units = 0;

  constructor(private readonly maxUnits: number) {}

  get(workspaceId: string, streamId: string): { readonly records: readonly RecordedEvent[]; readonly units: number } {
    const key = `${workspaceId}\n${streamId}`;
    const entry = this.entries.get(key);
    if (!entry) return { records: [], units: 0 };
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  set(workspaceId: string, streamId: string, records: readonly RecordedEvent[], units: number): void {
    const key = `${workspaceId}\n${streamId}`;
    const old = this.entries.get(key);
    if (old) {
      this.units -= old.units;
      this.entries.delete(key);
    }
    if (units > this.maxUnits) return;
    this.entries.set(key, { records, units });
    this.units += units;
    for (const [oldest, entry] of this.entries) {
      if (this.units <= this.maxUnits) break;
      this.entries.delete(oldest);
      this.units -= entry.units;
    }
  }
}
