import { describe, expect, it } from 'vitest';
import { FrameInput } from '../../../../infra/sandbox/remote/agentStdin';
import { STDIN_FRAMES_IN_FLIGHT } from '../../../../infra/sandbox/remote/protocol';

async function settled(promise: Promise<unknown>): Promise<string> {
  return Promise.race([promise.then(() => 'taken', (error: { code?: string }) => `refused ${error.code ?? ''}`), new Promise<string>((resolve) => setImmediate(() => resolve('waiting')))]);
}

describe("the agent's stdin of one process (FrameInput)", () => {
  it('answers a frame only once the process took it, in order, and ends after the last byte', async () => {
    const input = new FrameInput('run-1');
    const first = input.push(0, Buffer.from('ab'));
    const second = input.push(2, Buffer.from('cd'));
    const end = input.end(4);
    expect(await settled(first)).toBe('waiting');
    const reader = input[Symbol.asyncIterator]();
    expect(Buffer.from((await reader.next()).value as Uint8Array).toString()).toBe('ab');
    expect(await settled(first)).toBe('taken');
    expect(await settled(second)).toBe('waiting');
    expect(Buffer.from((await reader.next()).value as Uint8Array).toString()).toBe('cd');
    expect(await reader.next()).toMatchObject({ done: true });
    expect(await settled(end)).toBe('taken');
    // Nothing after the end, whatever it claims.
    await expect(async () => input.push(4, Buffer.from('late'))).rejects.toMatchObject({ code: 'HOST.STDIN_CLOSED' });
  });

  it('refuses bytes that do not follow on, a frame past the window and anything after the end; the process going drops what waits', async () => {
    const input = new FrameInput('run-1');
    expect(() => input.push(5, Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'HOST.STDIN_OUT_OF_ORDER' }));
    const waiting = Array.from({ length: STDIN_FRAMES_IN_FLIGHT }, (_, i) => input.push(i, Buffer.from('x')));
    for (const frame of waiting) frame.catch(() => undefined);
    expect(() => input.push(STDIN_FRAMES_IN_FLIGHT, Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'HOST.STDIN_BACKED_UP' }));
    const reader = input[Symbol.asyncIterator]();
    await reader.next();
    void input.end(STDIN_FRAMES_IN_FLIGHT).catch(() => undefined);
    expect(() => input.end(STDIN_FRAMES_IN_FLIGHT)).toThrow(expect.objectContaining({ code: 'HOST.STDIN_ENDED' }));
    input.close();
    expect(await settled(waiting[0]!)).toBe('taken');
    expect(await settled(waiting[1]!)).toBe('refused HOST.STDIN_CLOSED');
    expect(await reader.next()).toMatchObject({ done: true });
  });
});
