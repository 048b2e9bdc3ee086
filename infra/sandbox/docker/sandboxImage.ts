import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import {
  AGENT_HOME,
  AGENT_UID,
  DOOR_UID,
  DOORS_JS,
  DOORS_SCRIPT,
  FIRST_CREDENTIAL_UID,
  imageScriptsHash,
  LAUNCH_JS,
  LAUNCHER,
  LAUNCHER_LOADER,
  SANDBOX_GID,
} from './imageFiles';

/**
 * The default sandbox image, made from this machine's own files (no registry is needed or reachable): a shell,
 * the coreutils the sandbox's commands use, node and git with its helpers, the shared libraries they load
 * (found with ldd), `/etc` essentials naming the sandbox uids, and the launcher and door scripts. The tar is
 * deterministic (sorted, fixed mtime and owner), so its hash names the image: the same machine builds the
 * same tag, and a changed launcher or program makes a new one.
 */

export const SANDBOX_IMAGE_REPOSITORY = 'disco-parrot-sandbox';
/** What the sandbox needs to be a sandbox: checked at host start. */
/** The label naming the version of the in-image scripts (imageScriptsHash). */
export const SCRIPTS_LABEL = 'disco-parrot.scripts';
export const IMAGE_SCRIPTS_HASH = imageScriptsHash((text) => createHash('sha256').update(text).digest('hex'));
/** Names the recipe (scripts, programs, directories): a test helper rebuilds an image made from another one. */
export const RECIPE_LABEL = 'disco-parrot.recipe';
/** Where the image's node is, whichever node built it (a link to its real path when that differs). */
export const IMAGE_NODE = '/usr/bin/node';
export const REQUIRED_IN_IMAGE = ['/bin/sh', '/usr/bin/env', IMAGE_NODE, '/usr/bin/git', LAUNCHER, LAUNCHER_LOADER, DOORS_SCRIPT] as const;

const PROGRAMS = [
  'sh', 'dash', 'bash', 'env', 'git', 'npm', 'npx', 'cat', 'ls', 'mkdir', 'mv', 'rm', 'cp', 'id', 'sleep', 'head', 'tail', 'wc', 'chmod', 'touch', 'true', 'false',
  'pwd', 'stat', 'readlink', 'realpath', 'tr', 'cut', 'grep', 'sed', 'tee', 'sort', 'uniq', 'dirname', 'basename', 'ln', 'find', 'xargs',
  'timeout', 'kill', 'setsid', 'perl', 'base64', 'sha256sum', 'mktemp', 'date', 'uname', 'whoami', 'rmdir', 'printf', 'echo', 'test', 'expr', 'seq', 'cmp', 'diff',
  // An IDE SSH shell's terminal: util-linux's script allocates the pty, stty sizes it.
  'script', 'stty',
];
const REQUIRED_PROGRAMS = new Set(['sh', 'env', 'git']);
const DIRECTORIES = ['/usr/lib/git-core', '/usr/share/git-core/templates'];
const ETC_FILES = ['/etc/ssl/certs/ca-certificates.crt'];

function findProgram(name: string): string | undefined {
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Collects paths with every parent directory resolved, so symlinked directories (/lib → usr/lib) never become real ones. */
class RootfsList {
  readonly entries = new Set<string>();

  add(p: string): void {
    const dir = realpathSync(path.dirname(p));
    const full = path.join(dir, path.basename(p));
    if (this.entries.has(full)) return;
    const stat = lstatSync(full);
    this.entries.add(full);
    if (stat.isSymbolicLink()) this.add(path.resolve(dir, readlinkSync(full)));
    else if (stat.isDirectory()) for (const name of readdirSync(full)) this.add(path.join(full, name));
  }

  elfFiles(): string[] {
    return [...this.entries].filter((p) => {
      try {
        if (!lstatSync(p).isFile()) return false;
        const head = readFileSync(p).subarray(0, 4);
        return head.length === 4 && head[0] === 0x7f && head.toString('latin1', 1, 4) === 'ELF';
      } catch {
        return false;
      }
    });
  }
}

/** The dynamic loader an ELF executable names (PT_INTERP); 64-bit little-endian only, as every machine here is. */
export function elfInterpreter(file: string): string {
  const elf = readFileSync(file);
  if (elf.toString('latin1', 1, 4) !== 'ELF' || elf[4] !== 2 || elf[5] !== 1) throw new Error(`sandbox image: ${file} is not a 64-bit little-endian ELF`);
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  for (let i = 0; i < elf.readUInt16LE(0x38); i++) {
    const at = phoff + i * phentsize;
    if (elf.readUInt32LE(at) !== 3) continue; // PT_INTERP
    const offset = Number(elf.readBigUInt64LE(at + 8));
    const size = Number(elf.readBigUInt64LE(at + 32));
    return elf.toString('latin1', offset, offset + size).replace(/\0+$/, '');
  }
  throw new Error(`sandbox image: ${file} is statically linked; the launcher needs its dynamic loader`);
}

function sharedLibraries(files: readonly string[]): string[] {
  const libs = new Set<string>();
  const seen = new Set<string>();
  for (const file of files) {
    const inode = `${statSync(file).dev}:${statSync(file).ino}`;
    if (seen.has(inode)) continue;
    seen.add(inode);
    let out: string;
    try {
      out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      continue; // static, or not a dynamic executable
    }
    for (const line of out.split('\n')) {
      const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
      if (match?.[1]) libs.add(match[1]);
    }
  }
  return [...libs];
}

function etcFiles(): Record<string, string> {
  const credentialUsers = [];
  // A few named credential uids, so a tool asking who it is gets an answer; later ones work unnamed.
  for (let uid = FIRST_CREDENTIAL_UID; uid < FIRST_CREDENTIAL_UID + 64; uid++) credentialUsers.push(`dp-credential-${uid - FIRST_CREDENTIAL_UID}:x:${uid}:${uid}::/nonexistent:/usr/sbin/nologin`);
  return {
    'etc/passwd': [
      'root:x:0:0:root:/root:/usr/sbin/nologin',
      `dp-agent:x:${AGENT_UID}:${SANDBOX_GID}:sandbox agent:${AGENT_HOME}:/bin/sh`,
      `dp-door:x:${DOOR_UID}:${DOOR_UID}:sandbox doors:/nonexistent:/usr/sbin/nologin`,
      ...credentialUsers,
      'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
      '',
    ].join('\n'),
    'etc/group': ['root:x:0:', `dp-sandbox:x:${SANDBOX_GID}:`, `dp-door:x:${DOOR_UID}:`, 'nogroup:x:65534:', ''].join('\n'),
    'etc/nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files\n',
    'etc/hosts': '127.0.0.1 localhost\n::1 localhost\n',
    'etc/gitconfig': '',
    [LAUNCHER.slice(1)]: LAUNCH_JS,
    [DOORS_SCRIPT.slice(1)]: DOORS_JS,
  };
}

/** The recipe's hash: the in-image scripts and /etc files and the lists of what is copied from the machine. */
export function imageRecipeHash(): string {
  return createHash('sha256').update(JSON.stringify([IMAGE_SCRIPTS_HASH, PROGRAMS, DIRECTORIES, ETC_FILES, etcFiles()])).digest('hex').slice(0, 16);
}

export interface BuiltImage {
  readonly image: string;
  readonly imported: boolean;
  readonly bytes: number;
}

/** Builds the rootfs tar, hashes it and imports it unless an image of that hash exists. */
export async function buildSandboxImage(docker: Dockerode, log: (line: string) => void = () => undefined): Promise<BuiltImage> {
  const list = new RootfsList();
  const node = realpathSync(process.execPath);
  for (const name of PROGRAMS) {
    const found = findProgram(name);
    if (found) list.add(found);
    else if (REQUIRED_PROGRAMS.has(name)) throw new Error(`sandbox image: ${name} is not installed on this machine`);
  }
  list.add(node);
  // npm is a package beside node (its bin entries are links into it): the whole package comes along.
  const npm = findProgram('npm');
  if (npm) list.add(path.dirname(path.dirname(realpathSync(npm))));
  for (const dir of DIRECTORIES) if (existsSync(dir)) list.add(dir);
  for (const file of ETC_FILES) if (existsSync(file)) list.add(file);
  for (const lib of sharedLibraries(list.elfFiles())) list.add(lib);
  const staging = await mkdtemp(path.join(os.tmpdir(), 'dp-sandbox-image-'));
  try {
    const rootfs = path.join(staging, 'rootfs');
    await mkdir(rootfs);
    const files = [...list.entries].filter((p) => !lstatSync(p).isDirectory()).sort();
    // Through tar, not cp: modes, symlinks and hard links stay as they are (git-core's many names of one binary stay one file).
    const listFile = path.join(staging, 'files');
    await writeFile(listFile, files.map((f) => f.slice(1)).join('\n') + '\n');
    execFileSync('sh', ['-c', 'tar -C / --no-recursion -T "$1" -cf - | tar -C "$2" -xpf -', 'copy', listFile, rootfs]);
    // Merged-/usr machines: the top-level directories are links, as they are on the host.
    for (const top of ['bin', 'lib', 'lib64', 'sbin']) {
      const host = `/${top}`;
      if (existsSync(host) && lstatSync(host).isSymbolicLink() && !existsSync(path.join(rootfs, top))) await symlink(readlinkSync(host), path.join(rootfs, top));
    }
    if (node !== IMAGE_NODE) {
      await mkdir(path.join(rootfs, 'usr/bin'), { recursive: true });
      if (!existsSync(path.join(rootfs, IMAGE_NODE.slice(1)))) await symlink(node, path.join(rootfs, IMAGE_NODE.slice(1)));
    }
    for (const [relative, content] of Object.entries(etcFiles())) {
      await mkdir(path.join(rootfs, path.dirname(relative)), { recursive: true });
      await writeFile(path.join(rootfs, relative), content, { mode: 0o644 });
    }
    // No /workspace, home or doors directory: their tmpfs and bind mounts would copy an image directory's mode.
    for (const dir of ['/tmp', '/proc', '/sys', '/dev', '/root', '/run']) await mkdir(path.join(rootfs, dir), { recursive: true });
    await chmod(path.join(rootfs, 'tmp'), 0o1777);
    // Execute-only: what runs through it is non-dumpable (imageFiles.ts, LAUNCHER_LOADER).
    const loader = path.join(rootfs, LAUNCHER_LOADER.slice(1));
    await copyFile(realpathSync(elfInterpreter(node)), loader);
    await chmod(loader, 0o711);
    const tar = path.join(staging, 'rootfs.tar');
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', rootfs, '-cf', tar, '.']);
    const bytes = statSync(tar).size;
    const hash = createHash('sha256').update(await readFile(tar)).digest('hex').slice(0, 16);
    const image = `${SANDBOX_IMAGE_REPOSITORY}:${hash}`;
    if (await imageExists(docker, image)) {
      await docker.getImage(image).tag({ repo: SANDBOX_IMAGE_REPOSITORY, tag: 'latest' });
      log(`sandbox image ${image} is up to date (${files.length} files, ${(bytes / 1e6).toFixed(1)} MB), tagged ${SANDBOX_IMAGE_REPOSITORY}:latest`);
      return { image, imported: false, bytes };
    }
    const progress = await docker.importImage(createReadStream(tar), {
      repo: SANDBOX_IMAGE_REPOSITORY,
      tag: hash,
      changes: ['ENV PATH=/usr/local/bin:/usr/bin:/bin', `LABEL disco-parrot.sandbox-image=${hash}`, `LABEL ${SCRIPTS_LABEL}=${IMAGE_SCRIPTS_HASH}`, `LABEL ${RECIPE_LABEL}=${imageRecipeHash()}`],
    });
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(progress, (error) => (error ? reject(error) : resolve())));
    // `latest` is what a host without SANDBOX_IMAGE uses; the hash tag says which build it is.
    await docker.getImage(image).tag({ repo: SANDBOX_IMAGE_REPOSITORY, tag: 'latest' });
    log(`sandbox image ${image} imported (${files.length} files, ${(bytes / 1e6).toFixed(1)} MB), tagged ${SANDBOX_IMAGE_REPOSITORY}:latest`);
    return { image, imported: true, bytes };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export async function imageExists(docker: Dockerode, image: string): Promise<boolean> {
  return (await imageLabels(docker, image)) !== undefined;
}

/** The image's labels, or undefined when the engine does not have it. */
export async function imageLabels(docker: Dockerode, image: string): Promise<Readonly<Record<string, string>> | undefined> {
  try {
    return (await docker.getImage(image).inspect()).Config.Labels ?? {};
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}
