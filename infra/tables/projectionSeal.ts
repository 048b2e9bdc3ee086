import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StreamPosition } from '../../domain/ports/eventStore';
import { canonicalJson } from './logRecord';

const DOMAIN = 'disco-parrot/projection/v1';

/**
 * HMAC-SHA256 over a projection row: workspace, projection key, the stream and version it was folded from, and
 * the exact stored JSON text. The key lives only in platform memory (wrapped by the vault master key at rest,
 * see `projectionMacKey.ts`), so code that can write the table can neither forge a row nor move one to another
 * workspace, key or stream; an older row put back still carries a valid MAC, which is why readers also check
 * that the stream has no later version.
 */
export class ProjectionSeal {
  private constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new RangeError('A projection MAC key is 32 bytes');
  }

  static fromKey(key: Uint8Array): ProjectionSeal {
    return new ProjectionSeal(Buffer.from(key));
  }

  /** A key for this process only: rows it writes verify here and nowhere else (tests, tools). */
  static ephemeral(): ProjectionSeal {
    return new ProjectionSeal(randomBytes(32));
  }

  mac(workspaceId: string, key: string, from: StreamPosition, valueText: string): string {
    const input = canonicalJson([DOMAIN, workspaceId, key, from.streamId, from.version, valueText]);
    return createHmac('sha256', this.key).update(input, 'utf8').digest('base64url');
  }

  verify(workspaceId: string, key: string, from: StreamPosition, valueText: string, mac: string): boolean {
    const expected = Buffer.from(this.mac(workspaceId, key, from, valueText), 'utf8');
    const given = Buffer.from(mac, 'utf8');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
