import type { Writable } from 'node:stream';
import type { ProcessInput } from '../../domain/ports/sandboxHost';

/**
 * Feeds a process's stdin pipe from its input, one chunk at a time: the next is pulled only once the pipe took the
 * last one (`drain`), so whoever produces the input is held back by a process that reads slowly or not at all. The
 * input's end ends the pipe (the process reads EOF). When the pipe closes or `over` settles (the process exited,
 * was stopped), pulling stops and the input is told so, without waiting on it.
 */
export async function pipeInput(input: ProcessInput, pipe: Writable, over: Promise<unknown>): Promise<void> {
  let iterator: AsyncIterator<Uint8Array | string>;
  try {
    iterator = input[Symbol.asyncIterator]();
  } catch {
    pipe.end();
    return;
  }
  let finished = false;
  const gone = new Promise<'gone'>((resolve) => {
    const done = (): void => resolve('gone');
    pipe.once('close', done);
    pipe.once('error', done);
    void over.then(done, done);
  });
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), gone]);
      if (next === 'gone') return;
      if (next.done === true) {
        finished = true;
        return;
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value, 'utf8') : next.value;
      if (chunk.length === 0 || pipe.write(chunk)) continue;
      if ((await Promise.race([new Promise<'drained'>((resolve) => pipe.once('drain', () => resolve('drained'))), gone])) === 'gone') return;
    }
  } catch {
    // The input failed: the process reads EOF, as it would at the input's end.
  } finally {
    if (!pipe.writableEnded && !pipe.destroyed) pipe.end();
    if (!finished) void (async () => iterator.return?.())().catch(() => undefined);
  }
}
