/**
 * Random one-time values for sandbox hosts (enrolment tokens, host credentials) and their one-way hash; only the
 * hash is ever recorded. `mint(prefix)` returns a fresh value that begins with `prefix` (so a leaked value names
 * what it is) and its hash.
 */
export interface HostCredentials {
  mint(prefix: string): { readonly value: string; readonly hash: string };
  hash(value: string): string;
}
