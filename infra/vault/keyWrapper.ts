/**
 * Wraps and unwraps the per-workspace data keys of the encrypted Table vault with a master key that never
 * leaves its home (a local key file, or a Key Vault key used only through wrap/unwrap).
 */
export interface KeyWrapper {
  /** Identifies the master key (file path fingerprint or Key Vault key id), stored next to each wrapped key. */
  readonly keyId: string;
  wrap(dataKey: Uint8Array): Promise<WrappedKey>;
  unwrap(wrapped: WrappedKey): Promise<Uint8Array>;
}

export interface WrappedKey {
  /** The master key that wrapped it; a key rotation wraps new data keys with the new key. */
  readonly keyId: string;
  /** `A256GCM` (local file key) or `RSA-OAEP-256` (Key Vault key). */
  readonly algorithm: string;
  /** Base64. */
  readonly wrapped: string;
}
