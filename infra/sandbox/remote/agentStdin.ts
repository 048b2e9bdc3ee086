import { DomainError } from '../../../domain/errors';
import type { ProcessInput } from '../../../domain/ports/sandboxHost';
import { STDIN_FRAMES_IN_FLIGHT } from './protocol';

interface Queued {
  /** undefined: the end of input. */
  readonly data: Buffer | undefined;
  taken(): void;
  dropped(error: Error): void;
}

/** A stdin frame the agent did not pass on; the platform gets it back as a `failed` answer with its code. */
export class StdinRefusedError extends DomainError {
  constructor(code: string, message: string, kind: 'invalid' | 'conflict' | 'too_large' | 'gone' | 'forbidden' | 'not_found') {
    super(code, message, kind);
    this.name = 'StdinRefusedError';
  }
}

/**
 * One process's stdin as the agent receives it in `stdin` frames: the input its inner host pulls from. A frame is
 * answered once the process took its bytes, so the platform never has more than STDIN_FRAMES_IN_FLIGHT of them
 * unanswered and a process that reads nothing holds its writer back. Bytes must follow on from what came before
 * (`offset`), and nothing may follow the end: a frame that does not fit is refused, never spliced in.
 */
export class FrameInput implements ProcessInput {
  private received = 0;
  private ended = false;
  private closed = false;
  private readonly queue: Queued[] = [];
  private wake: (() => void) | undefined;

  constructor(readonly runId: string) {}

  /** Resolves when the process took the bytes; throws a refusal when they do not follow on. */
  push(offset: number, data: Buffer): Promise<void> {
    this.admit(offset);
    this.received += data.length;
    return this.enqueue(data);
  }

  /** Resolves when the process has taken everything before the end. */
  end(offset: number): Promise<void> {
    this.admit(offset);
    this.ended = true;
    return this.enqueue(undefined);
  }

  /** The process is gone (or stopped reading for good): what waits is answered as dropped, later frames refused. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const item of this.queue.splice(0)) item.dropped(new StdinRefusedError('HOST.STDIN_CLOSED', 'the process no longer reads its stdin', 'gone'));
    this.wake?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        for (;;) {
          const item = this.queue.shift();
          if (item) {
            item.taken();
            if (item.data === undefined) break;
            return { done: false, value: item.data };
          }
          if (this.closed) break;
          await new Promise<void>((resolve) => (this.wake = resolve));
          this.wake = undefined;
        }
        this.close();
        return { done: true, value: undefined };
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        this.close();
        return { done: true, value: undefined };
      },
    };
  }

  private admit(offset: number): void {
    if (this.closed) throw new StdinRefusedError('HOST.STDIN_CLOSED', 'the process no longer reads its stdin', 'gone');
    if (this.ended) throw new StdinRefusedError('HOST.STDIN_ENDED', "the process's input has ended", 'conflict');
    if (offset !== this.received) throw new StdinRefusedError('HOST.STDIN_OUT_OF_ORDER', `stdin bytes at ${offset}, expected ${this.received}`, 'invalid');
    if (this.queue.length >= STDIN_FRAMES_IN_FLIGHT) throw new StdinRefusedError('HOST.STDIN_BACKED_UP', `more than ${STDIN_FRAMES_IN_FLIGHT} stdin frames unanswered`, 'too_large');
  }

  private enqueue(data: Buffer | undefined): Promise<void> {
    return new Promise<void>((taken, dropped) => {
      this.queue.push({ data, taken, dropped });
      this.wake?.();
    });
  }
}
