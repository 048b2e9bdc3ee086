import type { GuardPolicy, ManagedValue } from '../launchGuard';
import { createRedactor, type RedactableSecret, type Redactor } from '../redaction';
import type { ServiceDependencies } from './dependencies';
import { ROTATION_WINDOW_MS } from '../catalogue';


/** A workspace's managed values as one run sees them: what its guard checks and its redactor masks. */
export interface WorkspaceSecretMaterial {
  readonly names: readonly string[];
  /** Current name → version, for the secrets that exist now. */
  readonly versions: Readonly<Record<string, number>>;
  readonly values: readonly ManagedValue[];
  readonly guard: GuardPolicy;
  readonly redactor: Redactor;
}

/**
 * Loads every current value (list + resolve, at this moment) and every previous value within the rotation
 * window, so a restart keeps masking what was rotated away. Server side only: nothing here leaves the process.
 */
export async function loadSecretMaterial(
  deps: Pick<ServiceDependencies, 'vault' | 'resolver' | 'clock'>,
  workspaceId: string,
): Promise<WorkspaceSecretMaterial> {
  const listed = await deps.vault.list(workspaceId);
  const current = await Promise.all(
    listed.map(async (m) => {
      const resolved = await deps.resolver.resolve(workspaceId, m.name);
      return { name: m.name, value: resolved.value, version: resolved.version };
    }),
  );
  const since = new Date(deps.clock.now().getTime() - ROTATION_WINDOW_MS);
  const previous = await deps.vault.previousValues(workspaceId, since);
  return materialOf(current, previous);
}

export function materialOf(
  current: readonly { name: string; value: string; version: number }[],
  previous: readonly RedactableSecret[],
): WorkspaceSecretMaterial {
  const values: ManagedValue[] = [...current.map(({ name, value }) => ({ name, value })), ...previous.map(({ name, value }) => ({ name, value }))];
  const names = current.map((c) => c.name);
  return {
    names,
    versions: Object.fromEntries(current.map((c) => [c.name, c.version])),
    values,
    guard: { secretNames: names, managedValues: values },
    redactor: createRedactor(values),
  };
}

/** Redacts every string inside a JSON-like value (event data, activity results). */
export function redactDeep(value: unknown, redactor: Pick<Redactor, 'redact'>): unknown {
  if (typeof value === 'string') return redactor.redact(value);
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, redactor));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [redactor.redact(k), redactDeep(v, redactor)]));
  return value;
}
