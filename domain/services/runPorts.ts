import type { RunSpec } from '../runSpec';

/**
 * What the run use cases need beyond the common dependencies. Blob storage implements the stores in infra;
 * the Durable client implements the orchestrations port at the HTTP edge.
 */
export interface RunSpecStore {
  /** Stores a validated, guard-checked spec (names and uses only, never a value); returns its reference. */
  put(workspaceId: string, runId: string, spec: RunSpec): Promise<string>;
  get(workspaceId: string, specRef: string): Promise<RunSpec>;
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
