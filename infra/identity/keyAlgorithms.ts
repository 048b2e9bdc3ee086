import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { PublicJwk, PublicRsaSigningJwk, PublicSigningJwk } from '../../domain/signingKeys';

/**
 * What differs between the platform's key rings: how a key is made and how its public half is published. The ring
 * itself (rotation, caching, sealing at rest, recording) is the same code for both (`SigningKeys`,
 * `TableSigningKeyRepository`).
 */
export interface SigningKeyAlgorithm<J extends PublicJwk> {
  readonly alg: J['alg'];
  /** A fresh key pair: the public JWK with its RFC 7638 thumbprint as kid, and the private JWK as JSON. */
  generate(): Promise<{ readonly publicJwk: J; readonly privateJwk: string }>;
  /** The public half rebuilt member by member from a stored one, so nothing else a row holds is ever published. */
  publish(stored: Readonly<Partial<J>>, kid: string): J;
}

/** Ed25519 (EdDSA): head checkpoints and sandbox tokens (docs/signing.md). */
export const ed25519Keys: SigningKeyAlgorithm<PublicSigningJwk> = {
  alg: 'EdDSA',
  async generate() {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const pub = await exportJWK(publicKey);
    if (pub.kty !== 'OKP' || pub.crv !== 'Ed25519' || typeof pub.x !== 'string') throw new Error('Unexpected key shape from jose');
    const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: pub.x }, 'sha256');
    const priv = await exportJWK(privateKey);
    return {
      publicJwk: { kty: 'OKP', crv: 'Ed25519', x: pub.x, kid, alg: 'EdDSA', use: 'sig' },
      privateJwk: JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: pub.x, d: priv.d, kid, alg: 'EdDSA' }),
    };
  },
  publish: (stored, kid) => ({ kty: 'OKP', crv: 'Ed25519', x: String(stored.x), kid, alg: 'EdDSA', use: 'sig' }),
};

/** RSA 2048 (RS256): workload identity tokens, which cloud token exchanges verify (docs/identity.md). */
export const rs256Keys: SigningKeyAlgorithm<PublicRsaSigningJwk> = {
  alg: 'RS256',
  async generate() {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
    const pub = await exportJWK(publicKey);
    if (pub.kty !== 'RSA' || typeof pub.n !== 'string' || typeof pub.e !== 'string') throw new Error('Unexpected key shape from jose');
    const kid = await calculateJwkThumbprint({ kty: 'RSA', n: pub.n, e: pub.e }, 'sha256');
    const priv = await exportJWK(privateKey);
    return {
      publicJwk: { kty: 'RSA', n: pub.n, e: pub.e, kid, alg: 'RS256', use: 'sig' },
      privateJwk: JSON.stringify({ ...priv, kid, alg: 'RS256' }),
    };
  },
  publish: (stored, kid) => ({ kty: 'RSA', n: String(stored.n), e: String(stored.e), kid, alg: 'RS256', use: 'sig' }),
};

/** An algorithm option that may be left out only for the Ed25519 ring (the default), so an RS256 ring always names its own. */
export type AlgorithmOption<J extends PublicJwk> = [J] extends [PublicSigningJwk]
  ? { readonly algorithm?: SigningKeyAlgorithm<J> }
  : { readonly algorithm: SigningKeyAlgorithm<J> };

/** The algorithm an `AlgorithmOption` names, Ed25519 when it names none (which its type allows for Ed25519 only). */
export function algorithmOf<J extends PublicJwk>(option: AlgorithmOption<J> | { readonly algorithm?: SigningKeyAlgorithm<J> }): SigningKeyAlgorithm<J> {
  return (option as { readonly algorithm?: SigningKeyAlgorithm<J> }).algorithm ?? (ed25519Keys as unknown as SigningKeyAlgorithm<J>);
}
