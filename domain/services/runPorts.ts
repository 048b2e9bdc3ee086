import type { RunRequestLedger } from '../ports/runRequestLedger';
import type { RunSpec } from '../runSpec';
import type { Caller } from './workspaceStream';

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

/** A run request as a queue message carries it (validated at the edge by one schema for both triggers). */
export interface RunRequestMessage {
  readonly workspaceId: string;
  /** The user on whose behalf the run is requested; authorised exactly like the HTTP caller. */
  readonly requestedBy: string;
  readonly requestId: string;
  readonly spec: RunSpec;
}

/** A message whose producer's signature the edge has verified, with the run id its request id maps to. */
export interface VerifiedRunRequest extends RunRequestMessage {
  readonly runId: string;
}

/** The run API as the starter needs it: request a run under a run id the starter chose. */
export interface RunRequester {
  requestRun(caller: Caller, request: { workspaceId: string; spec: RunSpec; runId: string }): Promise<{ runId: string }>;
}

export interface RunStarterPorts {
  readonly ledger: RunRequestLedger;
  readonly requester: RunRequester;
}
