import { OUTPUT_CHUNK_CHARS } from './protocol';

/** How long the agent gathers output before it sends a chunk (fewer, larger frames under a flood). */
export const OUTPUT_FLUSH_MS = 50;
/** What one process may stream per stream; past it the agent stops streaming (the exit still carries the output). */
export const STREAMED_BYTES_PER_PROCESS = 1024 * 1024;
/** Socket backlog past which the agent stops streaming a process rather than queue without bound. */
export const CHANNEL_BACKLOG_BYTES = 1024 * 1024;

type StreamName = 'stdout' | 'stderr';

/**
 * The agent's side of output streaming for one process: coalesces chunks, sends them in order, and is bounded.
 * When a stream passes its limit or the channel backs up, that stream stops for good: a gap in the middle
 * could split a value the platform's redactor would otherwise have caught whole; a stream that simply ends
 * early cannot.
 */
export class OutputStreamer {
  private readonly pending: Record<StreamName, string> = { stdout: '', stderr: '' };
  private readonly sent: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  private readonly stopped: Record<StreamName, boolean> = { stdout: false, stderr: false };
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: (stream: StreamName, text: string) => void,
    private readonly backlog: () => number,
    private readonly limitBytes = STREAMED_BYTES_PER_PROCESS,
  ) {}

  push(stream: StreamName, text: string): void {
    if (this.stopped[stream]) return;
    this.pending[stream] += text;
    if (this.pending[stream].length >= OUTPUT_CHUNK_CHARS) this.flush(stream);
    else this.timer ??= setTimeout(() => this.flushAll(), OUTPUT_FLUSH_MS);
  }

  /** Sends what is pending; called before the process's exit is reported, so every chunk precedes it. */
  end(): void {
    this.flushAll();
    this.stopped.stdout = true;
    this.stopped.stderr = true;
  }

  private flushAll(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush('stdout');
    this.flush('stderr');
  }

  private flush(stream: StreamName): void {
    while (this.pending[stream] !== '' && !this.stopped[stream]) {
      const chunk = this.pending[stream].slice(0, OUTPUT_CHUNK_CHARS);
      this.pending[stream] = this.pending[stream].slice(chunk.length);
      const bytes = Buffer.byteLength(chunk);
      if (this.sent[stream] + bytes > this.limitBytes || this.backlog() > CHANNEL_BACKLOG_BYTES) {
        this.stopped[stream] = true;
        this.pending[stream] = '';
        return;
      }
      this.sent[stream] += bytes;
      this.send(stream, chunk);
    }
  }
}
