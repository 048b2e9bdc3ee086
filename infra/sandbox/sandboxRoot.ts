import path from 'node:path';

/** What of the host's /etc a sandbox sees. Never shadow, sudoers, ssh keys, the host's git or npm config. */
export const ETC_ESSENTIALS = [
  'passwd', 'group', 'hosts', 'hostname', 'nsswitch.conf', 'host.conf', 'resolv.conf', 'gai.conf', 'ld.so.cache', 'ld.so.conf',
  'ld.so.conf.d', 'localtime', 'timezone', 'os-release', 'ssl', 'ca-certificates', 'ca-certificates.conf', 'alternatives', 'mime.types',
] as const;

/** Sizes of the private tmpfs mounts (tmpfs sizes are upper bounds; nothing is reserved). */
export const PRIVATE_TMP_SIZE = '512m';
export const PRIVATE_SHM_SIZE = '64m';

/**
 * A sandbox's own minimal root, built by its namespace init (root, inside the new mount namespace, before
 * any sandbox process exists) and entered with pivot_root, so the host's tree is unmounted, not merely
 * hidden: no project checkout, no `.azurite/`, no other sandbox, no host `/tmp` or `/dev/shm`.
 *
 * - `/` is a small tmpfs, read-only once built;
 * - `/usr`, `/bin`, `/sbin`, `/lib*` are read-only binds (or the host's symlinks into `/usr`);
 * - `/etc` holds only what programs need to run (users, hosts, name service, loader cache, time zone, CA
 *   certificates, alternatives): small files are copied, directories bound read-only;
 * - `/proc` is the namespace's own, `hidepid=2`; `/dev` a tmpfs with null, zero, full, random, urandom and
 *   tty bound in; `/tmp` and `/dev/shm` private tmpfs per sandbox;
 * - the sandbox's workspace, home and credential directory are bound read-write at the paths the host
 *   knows them by, so the host's code and the sandbox's processes name them alike; a node outside `/usr`
 *   gets its install prefix bound read-only.
 *
 * Arguments: the (empty, host-side) directory to build the root on, then `rw:<path>` / `ro:<path>` binds.
 */
export const ROOT_SCRIPT = String.raw`set -eu
R=$1; shift
mount -t tmpfs -o mode=0755,nosuid,nodev,size=4m dp-root "$R"
for d in usr bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d"
  elif [ -d "/$d" ]; then mkdir "$R/$d"; mount --bind -o ro,nosuid,nodev "/$d" "$R/$d"; fi
done
mkdir "$R/etc"
for e in ${ETC_ESSENTIALS.join(' ')}; do
  if [ -L "/etc/$e" ] || [ -f "/etc/$e" ]; then cp -P "/etc/$e" "$R/etc/$e"
  elif [ -d "/etc/$e" ]; then mkdir "$R/etc/$e"; mount --bind -o ro,nosuid,nodev "/etc/$e" "$R/etc/$e"; fi
done
mkdir "$R/proc" "$R/dev" "$R/tmp"
mount -t proc -o hidepid=2,nosuid,nodev,noexec proc "$R/proc"
mount -t tmpfs -o mode=0755,nosuid,size=64k dp-dev "$R/dev"
for n in null zero full random urandom tty; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mkdir "$R/dev/shm" "$R/dev/pts"
if mount -t devpts -o newinstance,ptmxmode=0666,mode=0600,nosuid,noexec dp-pts "$R/dev/pts" 2>/dev/null; then ln -s pts/ptmx "$R/dev/ptmx"; fi
mount -t tmpfs -o mode=1777,nosuid,nodev,size=${PRIVATE_SHM_SIZE} dp-shm "$R/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=${PRIVATE_TMP_SIZE} dp-tmp "$R/tmp"
for bind in "$@"; do
  mode=${'$'}{bind%%:*}; p=${'$'}{bind#*:}
  mkdir -p "$R$p"
  mount --bind -o "$mode,nosuid,nodev" "$p" "$R$p"
done
mkdir "$R/.old"
cd "$R"
pivot_root . .old
umount -l /.old
rmdir /.old
mount -o remount,ro,bind /
cd /`;

const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** The binds a sandbox needs: its own directories read-write, and node's install prefix when it is not a system dir. */
export function sandboxBinds(options: { workspace: string; home: string; credentialDir: string; nodePath?: string }): string[] {
  const binds = [`rw:${options.workspace}`, `rw:${options.home}`, `rw:${options.credentialDir}`];
  const node = options.nodePath ?? process.execPath;
  if (!SYSTEM_DIRS.some((dir) => node.startsWith(dir + path.sep))) binds.push(`ro:${path.dirname(path.dirname(node))}`);
  return binds;
}
