import { randomUUID } from 'node:crypto';
import type { ProcessInput } from '../../../domain/ports/sandboxHost';
import type { ChannelConnection } from './hostChannelServer';
import { STDIN_CHUNK_BYTES, STDIN_FRAMES_IN_FLIGHT } from './protocol';

/**
 * Sends a process's input to its host agent as `stdin` frames (at most STDIN_CHUNK_BYTES each, numbered by byte
 * offset), with no more than STDIN_FRAMES_IN_FLIGHT unanswered: the agent answers a frame once the process took
 * it, so a process that reads slowly holds the input back here. Then `stdinEnd`. Stops, and tells the input, when
 * the process has exited or the agent refused a frame.
 */
export async function sendInput(connection: ChannelConnection, runId: string, execId: string, input: ProcessInput, exited: Promise<unknown>): Promise<void> {
  const iterator = input[Symbol.asyncIterator]();
  const gone = exited.then(() => 'gone' as const, () => 'gone' as const);
  const inFlight = new Set<Promise<void>>();
  let refused = false;
  let finished = false;
  let offset = 0;
  const send = (body: { op: 'stdin'; offset: number; data: string } | { op: 'stdinEnd'; offset: number }): void => {
    const answered = connection.request({ ...body, requestId: randomUUID(), runId, execId }).then(
      () => undefined,
      () => void (refused = true),
    );
    inFlight.add(answered);
    void answered.finally(() => inFlight.delete(answered));
  };
  /** Waits until fewer than `most` frames are unanswered; false when the process is gone or a frame was refused. */
  const room = async (most: number): Promise<boolean> => {
    while (inFlight.size > most - 1 && !refused) if ((await Promise.race([Promise.race(inFlight), gone])) === 'gone') return false;
    return !refused;
  };
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), gone]);
      if (next === 'gone') return;
      if (next.done === true) break;
      const bytes = typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      for (let at = 0; at < bytes.length; at += STDIN_CHUNK_BYTES) {
        if (!(await room(STDIN_FRAMES_IN_FLIGHT))) return;
        const data = bytes.subarray(at, at + STDIN_CHUNK_BYTES);
        send({ op: 'stdin', offset, data: data.toString('base64') });
        offset += data.length;
      }
    }
    finished = true;
  } catch {
    // The input failed: the process reads EOF, as at the input's end.
  } finally {
    if (!finished) void (async () => iterator.return?.())().catch(() => undefined);
  }
  // The end goes once every byte before it was taken.
  if (await room(1)) send({ op: 'stdinEnd', offset });
}
