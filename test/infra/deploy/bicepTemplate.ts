import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type BicepFile, type BicepValue, type Declaration, at, parseBicep, scalar, tokenize } from './bicepParser';

/**
 * A deployment as the checks see it: the entry file and every module and import it reaches, parsed, with the
 * raw sources kept for the text-level checks. Built from disk for the real templates, or from an in-memory
 * map so a test can break one property and prove the checks notice.
 */
export interface Template {
  readonly entry: string;
  readonly files: ReadonlyMap<string, BicepFile>;
  readonly sources: ReadonlyMap<string, string>;
  /** Paths referenced but not found, with the file and line that referenced them. */
  readonly missing: readonly { from: string; line: number; path: string }[];
  /** Files that did not parse, with the parser's message. */
  readonly syntaxErrors: readonly string[];
}

export function loadTemplate(entry: string, read: (file: string) => string | undefined): Template {
  const files = new Map<string, BicepFile>();
  const sources = new Map<string, string>();
  const missing: { from: string; line: number; path: string }[] = [];
  const syntaxErrors: string[] = [];
  const visit = (file: string): void => {
    if (sources.has(file)) return;
    const source = read(file);
    if (source === undefined) return;
    sources.set(file, source);
    let parsed: BicepFile;
    try {
      parsed = parseBicep(source, file);
    } catch (error) {
      syntaxErrors.push((error as Error).message);
      return;
    }
    files.set(file, parsed);
    for (const d of parsed.declarations) {
      if ((d.keyword !== 'module' && d.keyword !== 'import') || !d.target) continue;
      const target = path.posix.join(path.posix.dirname(file), d.target);
      if (read(target) === undefined) missing.push({ from: file, line: d.line, path: d.target });
      else visit(target);
    }
  };
  visit(entry);
  return { entry, files, sources, missing, syntaxErrors };
}

export function templateFromDisk(entryFile: string): Template {
  const root = path.dirname(entryFile);
  return loadTemplate(path.basename(entryFile), (file) => {
    const full = path.join(root, file);
    return existsSync(full) ? readFileSync(full, 'utf8') : undefined;
  });
}

export function templateFromSources(sources: Readonly<Record<string, string>>, entry = 'main.bicep'): Template {
  return loadTemplate(entry, (file) => sources[file]);
}

export function declarationsOf(file: BicepFile, keyword: Declaration['keyword']): Declaration[] {
  return file.declarations.filter((d) => d.keyword === keyword);
}

export function resourceType(d: Declaration): string {
  return (d.target ?? '').split('@')[0] ?? '';
}

/** Every declared (not `existing`) resource of a type, with its file. */
export function resourcesOfType(t: Template, type: string): { file: BicepFile; decl: Declaration }[] {
  const out: { file: BicepFile; decl: Declaration }[] = [];
  for (const file of t.files.values())
    for (const decl of declarationsOf(file, 'resource')) if (!decl.existing && resourceType(decl) === type) out.push({ file, decl });
  return out;
}

export function modulePath(from: BicepFile, d: Declaration): string {
  return path.posix.join(path.posix.dirname(from.path), d.target ?? '');
}

/** Source text without comments, so a forbidden word in an explanatory comment does not count. */
export function codeText(source: string): string {
  return tokenize(source).map((tok) => tok.text).join(' ');
}

export function walkValues(value: BicepValue | undefined, visit: (v: BicepValue) => void): void {
  if (!value) return;
  visit(value);
  if (value.kind === 'object') for (const v of value.entries.values()) walkValues(v, visit);
  if (value.kind === 'array') for (const v of value.items) walkValues(v, visit);
}

/**
 * What an expression finally refers to, following params to every module call site, vars, imported vars,
 * module outputs and the two resource properties role assignments use. Results:
 * `literal:<value>`, `builtin:<role guid>`, `customRole:<file>#<symbol>`, `identity:<file>#<symbol>`
 * (a system-assigned identity's principal id), `param:<name>` (an entry-file parameter) or `unresolved:<text>`.
 */
export function resolve(t: Template, file: BicepFile, value: BicepValue | undefined, depth = 0): string[] {
  if (!value) return ['unresolved:<missing>'];
  if (depth > 20) return ['unresolved:<too deep>'];
  if (value.kind === 'string') return [`literal:${value.value}`];
  if (value.kind !== 'expr') return [`unresolved:<${value.kind}>`];
  const text = value.text;
  const roleId = /^subscriptionResourceId\('Microsoft\.Authorization\/roleDefinitions' , (.+)\)$/.exec(text);
  if (roleId?.[1])
    return resolve(t, file, { kind: 'expr', text: roleId[1], line: value.line }, depth + 1).map((r) =>
      r.startsWith('literal:') ? `builtin:${r.slice('literal:'.length)}` : r,
    );
  if (/^'[^'$]*'$/.test(text)) return [`literal:${text.slice(1, -1)}`];
  const parts = text.split('.');
  const head = parts[0] ?? '';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(head) || parts.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) return [`unresolved:${text}`];
  const decl = file.declarations.find((d) => d.name === head && d.keyword !== 'output');
  const imported = file.declarations.find((d) => d.keyword === 'import' && new RegExp(`[{ ,]${head}[ ,}]`).test(d.name));
  if (imported?.target) {
    const from = t.files.get(path.posix.join(path.posix.dirname(file.path), imported.target));
    const exported = from?.declarations.find((d) => d.keyword === 'var' && d.name === head);
    if (from && exported) return resolve(t, from, at(exported.value, parts.slice(1).join('.')) ?? exported.value, depth + 1);
  }
  if (!decl) return [`unresolved:${text}`];
  if (decl.keyword === 'var') {
    const inner = parts.length > 1 ? at(decl.value, parts.slice(1).join('.')) : decl.value;
    return resolve(t, file, inner, depth + 1);
  }
  if (decl.keyword === 'param' && parts.length === 1) {
    const callers = callSites(t, file);
    if (callers.length === 0) return [`param:${head}`];
    return callers.flatMap(({ caller, call }) => resolve(t, caller, at(call.value, `params.${head}`), depth + 1));
  }
  if (decl.keyword === 'module' && parts[1] === 'outputs' && parts[2]) {
    const target = t.files.get(modulePath(file, decl));
    const output = target?.declarations.find((d) => d.keyword === 'output' && d.name === parts[2]);
    return target && output ? resolve(t, target, output.value, depth + 1) : [`unresolved:${text}`];
  }
  if (decl.keyword === 'resource') {
    const rest = parts.slice(1).join('.');
    const type = resourceType(decl);
    if (type === 'Microsoft.Web/sites' && rest === 'identity.principalId' && !decl.existing) {
      const identity = scalar(at(decl.value, 'identity.type')) ?? '';
      return identity.split(',').map((s) => s.trim()).includes('SystemAssigned') ? [`identity:${file.path}#${head}`] : [`unresolved:${text}`];
    }
    if (type === 'Microsoft.Authorization/roleDefinitions' && rest === 'id' && !decl.existing) return [`customRole:${file.path}#${head}`];
  }
  return [`unresolved:${text}`];
}

/** Module declarations, anywhere in the template, that deploy this file. */
export function callSites(t: Template, target: BicepFile): { caller: BicepFile; call: Declaration }[] {
  const out: { caller: BicepFile; call: Declaration }[] = [];
  for (const caller of t.files.values())
    for (const call of declarationsOf(caller, 'module')) if (modulePath(caller, call) === target.path) out.push({ caller, call });
  return out;
}
