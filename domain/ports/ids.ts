export interface Ids {
  /** A new unique id (UUID v4 or similar); never derived from secret material. */
  next(): string;
}
