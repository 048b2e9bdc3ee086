import { DomainError } from './errors';
import { EGRESS_ERROR } from './catalogue';

/**
 * Where a sandbox may connect through the platform's egress proxy. The workspace's owner sets an allow-list
 * (model providers, registries, tool APIs); a RunSpec may narrow it per phase, never widen it. An entry is a
 * host name with an optional port (`registry.npmjs.org`, `api.example.com:8443`) or a wildcard for every name
 * below one (`*.example.com`, which does not match `example.com` itself). Without a port an entry means 443.
 * Names only: an IP literal is never an entry, so no list can open an address the name checks cannot see.
 */

export const MAX_EGRESS_HOSTS = 100;
export const DEFAULT_EGRESS_PORT = 443;

export { EGRESS_ERROR };

/** The RunSpec's per-phase narrowing: each list, when given, replaces the workspace list for that phase. */
export const EGRESS_PHASES = ['install', 'mcp', 'turns'] as const;
export type EgressPhase = (typeof EGRESS_PHASES)[number];
export type RunEgress = Partial<Record<EgressPhase, readonly string[]>>;

/** What the proxy enforces for a sandbox at a time: a destination must match every layer. */
export interface EgressAllowance {
  readonly layers: readonly (readonly string[])[];
  /**
   * Names refused whatever the layers allow, with their subdomains: the platform's own hosts, carried with the
   * allowance to a host the platform does not configure itself (a host agent's egress proxy).
   */
  readonly refuse?: readonly string[];
}
export const NOTHING_ALLOWED: EgressAllowance = { layers: [[]] };

/** What a sandbox's egress proxy decided over a period: counts, and the first refusals with their reasons. */
export interface EgressTally {
  readonly allowed: number;
  readonly refused: number;
  readonly refusals: readonly { readonly host: string; readonly port: number; readonly reason: string }[];
}

interface Pattern {
  readonly wildcard: boolean;
  /** Without the `*.` of a wildcard. */
  readonly name: string;
  readonly port: number;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ENTRY = /^(\*\.)?([^:*]+)(?::(\d{1,5}))?$/;

function parse(entry: string): Pattern | undefined {
  const match = ENTRY.exec(entry.trim().toLowerCase().replace(/\.(?=:|$)/, ''));
  if (!match) return undefined;
  const [, star, name = '', portText] = match;
  const labels = name.split('.');
  if (name.length > 253 || !labels.every((l) => LABEL.test(l))) return undefined;
  // The last label must hold a letter: `10.0.0.1` or `127.1` are addresses, never names.
  if (!/[a-z]/.test(labels[labels.length - 1] ?? '')) return undefined;
  // A wildcard needs a registrable-looking base: `*.com` would open a top-level domain.
  if (star && labels.length < 2) return undefined;
  const port = portText === undefined ? DEFAULT_EGRESS_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { wildcard: star !== undefined, name, port };
}

function format(p: Pattern): string {
  return `${p.wildcard ? '*.' : ''}${p.name}${p.port === DEFAULT_EGRESS_PORT ? '' : `:${p.port}`}`;
}

/** Whether an entry is a valid allow-list entry (the HTTP edge's schema uses this). */
export function isEgressHost(entry: string): boolean {
  return parse(entry) !== undefined;
}

/**
 * The canonical form of a list: lower case, no trailing dot, `:443` dropped, duplicates removed, sorted. Throws
 * `EGRESS.INVALID_HOST` naming the first entry that is not a host name (with optional port or `*.` prefix).
 */
export function normalizeEgressHosts(entries: readonly string[]): string[] {
  if (entries.length > MAX_EGRESS_HOSTS)
    throw new DomainError(EGRESS_ERROR.TOO_MANY_HOSTS, `An egress allow-list holds at most ${MAX_EGRESS_HOSTS} hosts`, 'invalid');
  const out = new Set<string>();
  for (const entry of entries) {
    const pattern = parse(entry);
    if (!pattern) throw new DomainError(EGRESS_ERROR.INVALID_HOST, `${JSON.stringify(entry.slice(0, 300))} is not a host name (optionally *.name, optionally :port)`, 'invalid');
    out.add(format(pattern));
  }
  return [...out].sort();
}

function nameMatches(p: Pattern, host: string): boolean {
  return p.wildcard ? host.endsWith(`.${p.name}`) : host === p.name;
}

/** Whether a list lets `host:port` through. A numeric host never matches: entries are names. */
export function egressListAllows(list: readonly string[], hostIn: string, port: number): boolean {
  const host = hostIn.toLowerCase().replace(/\.$/, '');
  return list.some((entry) => {
    const p = parse(entry);
    return p !== undefined && p.port === port && nameMatches(p, host);
  });
}

/** Whether an allowance (every layer) lets `host:port` through. */
export function egressAllows(allowance: EgressAllowance, host: string, port: number): boolean {
  return allowance.layers.every((layer) => egressListAllows(layer, host, port));
}

/** Whether the workspace list covers a narrowing entry: everything the entry matches, some entry matches too. */
function covered(workspace: readonly Pattern[], entry: Pattern): boolean {
  return workspace.some((w) => {
    if (w.port !== entry.port) return false;
    if (!entry.wildcard) return nameMatches(w, entry.name);
    return w.wildcard && (entry.name === w.name || entry.name.endsWith(`.${w.name}`));
  });
}

/**
 * The first entry of a RunSpec's `egress` the workspace list does not cover, with where it was found: a RunSpec
 * may narrow the owner's list, never widen it. Entries are compared in canonical form.
 */
export function firstWidening(workspaceList: readonly string[], egress: RunEgress | undefined): { where: string; host: string } | undefined {
  const workspace = workspaceList.map(parse).filter((p): p is Pattern => p !== undefined);
  for (const phase of EGRESS_PHASES) {
    for (const [i, entry] of (egress?.[phase] ?? []).entries()) {
      const p = parse(entry);
      if (!p || !covered(workspace, p)) return { where: `egress.${phase}[${i}]`, host: entry };
    }
  }
  return undefined;
}

/** A RunSpec asked for a destination the workspace's owner did not allow. */
export class EgressWideningRefused extends DomainError {
  constructor(
    readonly where: string,
    readonly host: string,
  ) {
    super(EGRESS_ERROR.NOT_IN_WORKSPACE_LIST, `${where} names ${host}, which is not on the workspace's egress allow-list (a run spec may narrow it, never widen it)`, 'invalid');
    this.name = 'EgressWideningRefused';
  }
}

/**
 * What the proxy enforces during a phase: the workspace list as it is now, and the RunSpec's narrowing for the
 * phase if it has one. Both layers apply, so an owner who shrinks the list mid-run shrinks every later phase.
 */
export function allowanceFor(workspaceList: readonly string[], egress: RunEgress | undefined, phase: EgressPhase): EgressAllowance {
  const narrowed = egress?.[phase];
  return { layers: narrowed === undefined ? [workspaceList] : [workspaceList, narrowed] };
}
