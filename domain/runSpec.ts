import type { RunEgress } from './egress';

/**
 * What a run asks for (DESIGN.md §5). Secrets are referenced by name and use, never carried by value;
 * the platform picks the channel from the use (see secretPolicy.ts). Validation of untrusted JSON into this
 * shape happens at the HTTP edge; this file is the shape the domain reasons about.
 */

/** The uses a RunSpec may name; anything else is refused by `channelFor`. */
export const SECRET_USES = ['git', 'npm', 'file', 'stdin', 'env'] as const;
export type SecretUse = (typeof SECRET_USES)[number];

export interface SecretReference {
  /** The workspace secret's name. */
  readonly ref: string;
  /** How the process consumes it; an unknown use reaches `channelFor` and is refused. */
  readonly use: string;
  /** For `env` and `file`: the env var name the process sees (for `file`, it holds the file's path). */
  readonly as?: string;
  /** For `git` and `npm`: the host the credential is for. */
  readonly host?: string;
}

/** A command is an argv array; there is no shell string anywhere in a RunSpec. */
export type Argv = readonly string[];

export interface InstallStep {
  readonly command: Argv;
  readonly secrets?: readonly SecretReference[];
}

export interface McpServerSpec {
  readonly name: string;
  readonly command: Argv;
  readonly secrets?: readonly SecretReference[];
}

export interface TurnSpec {
  readonly command: Argv;
  /** The workspace secret holding the model-provider key: the agent runtime's lease for its lifetime. */
  readonly modelKey?: string;
}

export interface RunSpec {
  readonly template: { readonly files: Readonly<Record<string, string>> };
  /** The sandbox's standing env: checked by the launch guard, never allowed to carry a managed key. */
  readonly env?: Readonly<Record<string, string>>;
  readonly install?: readonly InstallStep[];
  readonly mcp?: readonly McpServerSpec[];
  readonly turns: readonly TurnSpec[];
  readonly deadlineSeconds: number;
  /**
   * Where each phase's processes may connect, narrowing the workspace's egress allow-list (never widening it:
   * a host the list does not cover is refused at the request). A phase left out gets the workspace list.
   */
  readonly egress?: RunEgress;
  /**
   * Keep the workspace's files on the workspace's own volume between runs (a host that keeps volumes: Docker).
   * Never another workspace's: the host names the volume from the run's workspace. What an earlier run left there
   * is untrusted input. Refused (422) where the sandbox host keeps none.
   */
  readonly keepWorkspace?: boolean;
}

/** Every secret reference in a spec with where it was found, for policy checks and lease planning. */
export function secretReferencesOf(spec: RunSpec): { readonly where: string; readonly reference: SecretReference }[] {
  const out: { where: string; reference: SecretReference }[] = [];
  (spec.install ?? []).forEach((step, i) => (step.secrets ?? []).forEach((reference) => out.push({ where: `install[${i}]`, reference })));
  (spec.mcp ?? []).forEach((server, i) => (server.secrets ?? []).forEach((reference) => out.push({ where: `mcp[${i}]`, reference })));
  return out;
}
