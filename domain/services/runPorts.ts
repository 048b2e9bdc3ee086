import type { RunSpec } from '../runSpec';

/**
 * What the run use cases need beyond the common dependencies. Blob storage implements the stores in infra;
 * the Durable client implements the orchestrations port at the HTTP edge.
 */
export interface RunSpecStore {
  /**
   * Stores a validated, guard-checked spec (names and uses only, never a value); returns its reference and the
   * SHA-256 (hex) of the bytes stored, which `RunRequested` records.
   */
  put(workspaceId: string, runId: string, spec: RunSpec): Promise<{ ref: string; digest: string }>;
  /** The stored spec and the SHA-256 of the bytes read; `readRunSpec` compares it with the recorded digest. */
  get(workspaceId: string, specRef: string): Promise<{ spec: RunSpec; digest: string }>;
}

export interface TranscriptStore {
  /** Appends one chunk; the text must already be redacted (the store redacts nothing itself). */
  append(workspaceId: string, runId: string, text: string): Promise<void>;
  read(workspaceId: string, runId: string): Promise<string>;
}

/** Starting and signalling the `runLifecycle` orchestration: its input is the run id, nothing else. */
export interface RunOrchestrations {
  start(workspaceId: string, runId: string): Promise<void>;
  raiseCancel(runId: string): Promise<void>;
}

export interface RunStores {
  readonly specs: RunSpecStore;
  readonly transcripts: TranscriptStore;
}
