import { createHash, randomBytes } from 'node:crypto';
import type { HostCredentials } from '../../../domain/ports/hostCredentials';

/** 256 random bits per token or credential, base64url; SHA-256 is enough for a value with that much entropy. */
export const randomHostCredentials: HostCredentials = {
  mint(prefix) {
    const value = `${prefix}${randomBytes(32).toString('base64url')}`;
    return { value, hash: randomHostCredentials.hash(value) };
  },
  hash(value) {
    return createHash('sha256').update(value, 'utf8').digest('hex');
  },
};

/** What the host routes need of the live channel, where there is one (SANDBOX_HOST=remote). */
export interface HostChannelControl {
  lastSeen(hostId: string): string | undefined;
  /** `workspaceId`: the host's owner, where the channel keeps sessions by it (Web PubSub). */
  cutOff(hostId: string, reason: string, workspaceId?: string): void;
}

let current: HostChannelControl | undefined;
/** The process's host channel, set by the composition when it opens one. */
export const hostChannelControl = {
  set(control: HostChannelControl | undefined): void {
    current = control;
  },
  get(): HostChannelControl | undefined {
    return current;
  },
};
