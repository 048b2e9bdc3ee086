import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthenticationError } from '../../domain/ports/callerAuthenticator';
import type { GatewayBearers, GatewayBinding } from '../../domain/ports/gatewayBearers';

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * Bearers of this process only, for a host of one instance when no table-backed store is configured: 32
 * random bytes, kept as SHA-256 hashes, compared as hashes in constant time, expiring at the deadline.
 */
export class InMemoryGatewayBearers implements GatewayBearers {
  private readonly byHash = new Map<string, { hash: Buffer; binding: GatewayBinding }>();

  async mint(binding: GatewayBinding): Promise<string> {
    const bearer = randomBytes(32).toString('base64url');
    const hash = sha256(bearer);
    this.byHash.set(hash.toString('hex'), { hash, binding });
    return bearer;
  }

  async verify(bearer: string, now: Date): Promise<GatewayBinding> {
    const hash = sha256(bearer);
    const entry = this.byHash.get(hash.toString('hex'));
    if (!entry || !timingSafeEqual(entry.hash, hash)) throw new AuthenticationError('GATEWAY.BEARER_INVALID', 'Unknown or revoked gateway bearer');
    if (Date.parse(entry.binding.expiresAt) <= now.getTime()) throw new AuthenticationError('GATEWAY.BEARER_EXPIRED', 'The gateway bearer has expired');
    return entry.binding;
  }

  async revokeRun(workspaceId: string, runId: string): Promise<void> {
    for (const [key, entry] of this.byHash)
      if (entry.binding.workspaceId === workspaceId && entry.binding.runId === runId) this.byHash.delete(key);
  }
}
