import { randomUUID } from 'node:crypto';
import type { Ids } from '../../domain/ports/ids';

/** UUID v4 from the CSPRNG; never derived from anything secret. */
export class RandomUuidIds implements Ids {
  next(): string {
    return randomUUID();
  }
}

export const randomUuidIds: Ids = new RandomUuidIds();
