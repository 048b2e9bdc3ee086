export interface Random {
  /** A float in [0, 1), for jitter; not for secrets. */
  next(): number;
  /** `length` cryptographically strong random bytes, for secrets such as bearers. */
  bytes(length: number): Uint8Array;
}
