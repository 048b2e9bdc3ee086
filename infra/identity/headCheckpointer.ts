import canonicalize from 'canonicalize';
import { CompactSign, calculateJwkThumbprint, compactVerify, decodeProtectedHeader, importJWK, type KeyLike } from 'jose';
import type { PublicSigningJwk } from '../../domain/signingKeys';
import type { HeadCheckpointer } from '../../domain/ports/eventStore';
import type { SigningKeys } from './signingKeys';

/** The JWS `typ` of a checkpoint; sandbox tokens are `JWT`, so neither can be passed off as the other. */
export const CHECKPOINT_TYP = 'disco-checkpoint+jws';

type Head = { workspaceId: string; sequence: number; hash: string };

/** RFC 8785 canonical JSON of the head, tagged so the payload can never read as a JWT claim set. */
function payloadOf(head: Head): Uint8Array {
  const text = canonicalize({ checkpoint: 1, workspaceId: head.workspaceId, sequence: head.sequence, hash: head.hash });
  if (text === undefined) throw new Error('A head cannot be canonicalised');
  return new TextEncoder().encode(text);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Signs each new log head (DESIGN.md §3) as a compact JWS, EdDSA over Ed25519, the signing key's `kid` in the
 * protected header. `verify` accepts a signature by any key the platform ever used, so checkpoints made before
 * a rotation keep verifying for good; a signature by any other key, over any other head, with another
 * algorithm or `typ`, does not. Key-store failures propagate (a verify must not report "tampered" because
 * storage was briefly unreachable); only a signature that does not check out answers false.
 */
export class SigningKeyCheckpointer implements HeadCheckpointer {
  constructor(private readonly keys: SigningKeys) {}

  async sign(head: Head): Promise<string> {
    const { kid, key } = await this.keys.signingKey();
    return new CompactSign(payloadOf(head)).setProtectedHeader({ alg: 'EdDSA', kid, typ: CHECKPOINT_TYP }).sign(key);
  }

  verify(head: Head, signature: string): Promise<boolean> {
    return verifyCheckpoint(head, signature, (kid) => this.keys.checkpointKey(kid));
  }
}

/** Checks a checkpoint against whichever public key `keyFor` gives for its `kid` (none: it does not verify). */
export async function verifyCheckpoint(head: Head, signature: string, keyFor: (kid: string) => Promise<KeyLike | undefined>): Promise<boolean> {
  let kid: string;
  try {
    const header = decodeProtectedHeader(signature);
    if (header.alg !== 'EdDSA' || header.typ !== CHECKPOINT_TYP || typeof header.kid !== 'string') return false;
    kid = header.kid;
  } catch {
    return false;
  }
  const key = await keyFor(kid);
  if (!key) return false;
  try {
    const { payload } = await compactVerify(signature, key, { algorithms: ['EdDSA'] });
    return sameBytes(payload, payloadOf(head));
  } catch {
    return false;
  }
}

/**
 * Verifies checkpoints with a fixed set of public keys (those carried by a backup), signs nothing: what a
 * restore checks a backup with. A key whose `kid` is not its own JWK thumbprint is not used.
 */
export class PublicKeyCheckpointVerifier implements HeadCheckpointer {
  private readonly keys = new Map<string, Promise<KeyLike | undefined>>();

  constructor(publicJwks: readonly PublicSigningJwk[]) {
    for (const jwk of publicJwks) {
      this.keys.set(
        jwk.kid,
        calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x }, 'sha256').then(async (thumbprint) =>
          thumbprint === jwk.kid && jwk.kty === 'OKP' && jwk.crv === 'Ed25519' ? ((await importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x }, 'EdDSA')) as KeyLike) : undefined,
        ),
      );
    }
  }

  sign(): Promise<string> {
    return Promise.reject(new Error('A public-key verifier cannot sign checkpoints'));
  }

  verify(head: Head, signature: string): Promise<boolean> {
    return verifyCheckpoint(head, signature, async (kid) => this.keys.get(kid));
  }
}
