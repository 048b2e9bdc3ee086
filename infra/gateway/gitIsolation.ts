import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chown, lstat, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { DomainError } from '../../domain/errors';
import type { ProcessCredentialDelivery, ProcessCredentialTarget } from '../../domain/ports/sandboxHost';

/**
 * `fetch` and `push` run against a repository the agent wrote, and git reads that repository's config:
 * proxies and URL rewrites (which decide where the Authorization header goes) and commands (which run in the
 * process that can read the token). Command-scope overrides cannot win against every per-URL key, so the
 * credential process does not use the repository's git directory at all: it gets a private one (its own
 * config, HEAD and refs, in its credential directory) and only the repository's object store, through
 * GIT_OBJECT_DIRECTORY. Objects are data; nothing in them is executed or decides a destination.
 */

export interface WorkspaceRepository {
  /** As the sandbox's processes see it. */
  readonly objects: string;
}

const NOT_A_REPOSITORY = 'GATEWAY.NOT_A_REPOSITORY';
/** Below Linux's limit for one argument, since the agent process that writes it receives it as one. */
const MAX_FETCH_HEAD = 100 * 1024;

/** The repository at `dir` (relative to the workspace): its `.git` and `.git/objects` must be real directories. */
export async function workspaceRepository(workspace: string, dir: string | undefined): Promise<WorkspaceRepository> {
  const gitDir = path.join(workspace, dir ?? '.', '.git');
  for (const candidate of [gitDir, path.join(gitDir, 'objects')]) {
    const stat = await lstat(candidate).catch(() => undefined);
    if (!stat?.isDirectory())
      throw new DomainError(NOT_A_REPOSITORY, `${dir ?? '.'} is not a git repository with its own .git directory`, 'invalid');
  }
  return { objects: path.join(gitDir, 'objects') };
}

/** A git delivery that also points git at a private git directory and the repository's objects. */
export interface IsolatedGitDelivery {
  readonly delivery: ProcessCredentialDelivery;
  /** FETCH_HEAD as the credential process left it, read before the directory is removed. */
  fetchHead(): string;
}

async function ownedDir(dir: string, target: ProcessCredentialTarget): Promise<void> {
  await mkdir(dir, { mode: 0o700 });
  if (target.uid !== undefined) await chown(dir, target.uid, target.gid ?? target.uid);
}

async function ownedFile(file: string, content: string, target: ProcessCredentialTarget): Promise<void> {
  const handle = await open(file, 'wx', 0o600);
  try {
    if (target.uid !== undefined) await handle.chown(target.uid, target.gid ?? target.uid);
    await handle.writeFile(content, 'utf8');
  } finally {
    await handle.close();
  }
}

async function readNoFollow(file: string): Promise<string> {
  try {
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const buffer = Buffer.alloc(MAX_FETCH_HEAD);
      const { bytesRead } = await handle.read(buffer, 0, MAX_FETCH_HEAD, 0);
      return buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
}

/**
 * Wraps the channel's delivery: creates `<credentialDir>/git-<random>` as a bare repository owned by the
 * credential process, whose config shares new objects with the agent's group, and sets GIT_DIR and
 * GIT_OBJECT_DIRECTORY for that process only.
 */
export async function isolateGitDelivery(
  delivery: ProcessCredentialDelivery,
  target: ProcessCredentialTarget,
  repository: WorkspaceRepository,
): Promise<IsolatedGitDelivery> {
  const gitDir = path.join(target.credentialDir, `git-${randomBytes(6).toString('hex')}`);
  let fetchHead = '';
  const cleanup = async () => {
    fetchHead = fetchHead || (await readNoFollow(path.join(gitDir, 'FETCH_HEAD')));
    await rm(gitDir, { recursive: true, force: true });
    await delivery.cleanup();
  };
  try {
    await ownedDir(gitDir, target);
    for (const sub of ['refs', 'refs/heads', 'refs/tags', 'objects']) await ownedDir(path.join(gitDir, sub), target);
    await ownedFile(path.join(gitDir, 'HEAD'), 'ref: refs/heads/gateway\n', target);
    await ownedFile(path.join(gitDir, 'config'), '[core]\n\trepositoryformatversion = 0\n\tbare = true\n\tsharedRepository = group\n', target);
  } catch (error) {
    await cleanup();
    throw error;
  }
  return {
    delivery: {
      ...delivery,
      env: { ...delivery.env, GIT_DIR: gitDir, GIT_OBJECT_DIRECTORY: repository.objects },
      paths: [...delivery.paths, gitDir],
      cleanup,
    },
    fetchHead: () => fetchHead,
  };
}
