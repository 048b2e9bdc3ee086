import { randomInt } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Unprivileged identities for one sandbox: a block of uids that no other sandbox on this machine uses, so
 * a process of one sandbox never shares a uid with another's, and a credential-bearing process never shares
 * one with the agent. No /etc/passwd entries are needed. Blocks are claimed with an atomic mkdir in a
 * machine-wide directory, so several host processes (or test workers) never hand out the same block.
 */
export const UID_BASE = 200_000;
export const BLOCK_SIZE = 1024;
/** Keeps the highest uid below 2^31, which some tools treat as signed. */
const SLOTS = Math.floor((2 ** 31 - 1 - UID_BASE) / BLOCK_SIZE);

export class UidBlockExhaustedError extends Error {
  constructor() {
    super('this sandbox has used every uid of its block; no uid is ever reused within a sandbox');
    this.name = 'UidBlockExhaustedError';
  }
}

export class UidBlock {
  private next: number;

  constructor(
    readonly slot: number,
    private readonly claim: string,
  ) {
    this.next = this.agentUid + 1;
  }

  /** The group shared by every process of the sandbox: it owns the workspace. */
  get groupGid(): number {
    return UID_BASE + this.slot * BLOCK_SIZE;
  }

  get agentUid(): number {
    return this.groupGid + 1;
  }

  contains(uid: number): boolean {
    return uid >= this.groupGid && uid < this.groupGid + BLOCK_SIZE;
  }

  /** A fresh uid for one credential-bearing process; never reused, so a leftover child cannot inherit access. */
  credentialUid(): number {
    if (this.next >= this.groupGid + BLOCK_SIZE) throw new UidBlockExhaustedError();
    return this.next++;
  }

  async release(): Promise<void> {
    await rm(this.claim, { recursive: true, force: true });
  }
}

export async function claimUidBlock(claimsDir: string): Promise<UidBlock> {
  await mkdir(claimsDir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 100; attempt++) {
    const slot = randomInt(0, SLOTS);
    const claim = path.join(claimsDir, String(slot));
    try {
      await mkdir(claim, { mode: 0o700 });
      return new UidBlock(slot, claim);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  throw new Error('could not claim a free uid block');
}
