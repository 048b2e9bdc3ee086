import { randomBytes } from 'node:crypto';
import type { Random } from '../../domain/ports/random';

/** `next` is for jitter only; `bytes` comes from the CSPRNG and is fit for secrets. */
export class SystemRandom implements Random {
  next(): number {
    return Math.random();
  }

  bytes(length: number): Uint8Array {
    return new Uint8Array(randomBytes(length));
  }
}

export const systemRandom: Random = new SystemRandom();
