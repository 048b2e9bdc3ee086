import { constants } from 'node:fs';
import { lstat, lchown, mkdir, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { DomainError } from '../../domain/errors';

/** A template path that would escape the workspace or traverse a symlink: refused. */
export class TemplatePathError extends DomainError {
  constructor(readonly file: string, problem: string) {
    super('SANDBOX.TEMPLATE_PATH', `template file ${JSON.stringify(file)} ${problem}`, 'invalid');
    this.name = 'TemplatePathError';
  }
}

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** Resolves a relative path inside `root`, refusing absolute paths, `..` escapes and NUL. */
export function insideRoot(root: string, relative: string): string {
  if (relative === '' || relative.includes('\0') || path.isAbsolute(relative)) throw new TemplatePathError(relative, 'must be a relative path');
  const full = path.resolve(root, relative);
  if (!full.startsWith(root + path.sep)) throw new TemplatePathError(relative, 'escapes the workspace');
  return full;
}

/**
 * Writes template files as root on behalf of the agent. A kept volume may hold symlinks the agent planted in
 * an earlier run, so no component may be a symlink and the final open refuses to follow one; nothing of the
 * sandbox runs while this happens, so the check cannot race.
 */
export async function writeTemplateFiles(root: string, files: Readonly<Record<string, string>>, owner: Owner | undefined): Promise<void> {
  for (const [relative, content] of Object.entries(files)) {
    const full = insideRoot(root, relative);
    let dir = root;
    for (const part of path.relative(root, path.dirname(full)).split(path.sep).filter(Boolean)) {
      dir = path.join(dir, part);
      const stat = await lstat(dir).catch(() => undefined);
      if (stat?.isSymbolicLink()) throw new TemplatePathError(relative, 'passes through a symlink');
      if (!stat) {
        await mkdir(dir, { mode: 0o2770 });
        if (owner) await lchown(dir, owner.uid, owner.gid);
      }
    }
    const handle = await open(full, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o660).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ELOOP' ? new TemplatePathError(relative, 'is a symlink') : error;
    });
    try {
      await handle.writeFile(content, 'utf8');
      if (owner) await handle.chown(owner.uid, owner.gid);
      await handle.chmod(0o660);
    } finally {
      await handle.close();
    }
  }
}

/** Hands a kept volume to this sandbox's identities without following any symlink inside it. */
export async function chownTree(root: string, owner: Owner): Promise<void> {
  await lchown(root, owner.uid, owner.gid);
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) await chownTree(full, owner);
    else await lchown(full, owner.uid, owner.gid);
  }
}
