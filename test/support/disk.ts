import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A small filesystem mounted for a test (we run as root), to play a data dir's disk. */
export interface TestDisk {
  dir: string;
  /** Unmounts it (lazily when still busy) and removes what it was made of; idempotent. */
  unmount(): Promise<void>;
}

/** A tmpfs of `sizeMb` MiB: writes past it fail with ENOSPC ("disk full"). */
export async function mountTmpfs(sizeMb: number): Promise<TestDisk> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hodei-disk-'));
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir]);
  let mounted = true;
  return {
    dir,
    unmount: async () => {
      if (mounted) await unmountDir(dir);
      mounted = false;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * An ext4 filesystem of `sizeMb` MiB in an image file, mounted through a loop device with
 * `errors=remount-ro`. `failWrites()` reports a filesystem error to the kernel, which remounts it
 * read-only at once, as when a disk fails under a running system: every later write fails with
 * EROFS, even through files already open for writing, while reads go on. (A plain `mount -o
 * remount,ro` is refused while a process holds a file open for writing, as SQLite does.)
 */
export async function mountExt4(sizeMb: number): Promise<TestDisk & { failWrites(): Promise<void> }> {
  const base = await mkdtemp(path.join(tmpdir(), 'hodei-disk-'));
  const image = path.join(base, 'disk.img');
  const dir = path.join(base, 'mnt');
  await run('truncate', ['-s', `${sizeMb}M`, image]);
  await run('mkfs.ext4', ['-q', '-F', image]);
  await run('mkdir', ['-m', '0700', dir]);
  await run('mount', ['-o', 'loop,errors=remount-ro', image, dir]);
  let mounted = true;
  return {
    dir,
    failWrites: async () => {
      // The filesystem's own knob: /sys/fs/ext4/<loopN>/trigger_fs_error (its device by major:minor).
      const { dev } = await stat(dir);
      const device = await loopDeviceName(dev);
      await writeFile(`/sys/fs/ext4/${device}/trigger_fs_error`, 'hodei test: disk failure\n');
    },
    unmount: async () => {
      if (mounted) await unmountDir(dir);
      mounted = false;
      await rm(base, { recursive: true, force: true });
    },
  };
}

/** The block device name (`loop3`) of device number `dev`. */
async function loopDeviceName(dev: number): Promise<string> {
  // Linux's encoding of dev_t: major in bits 8-19, minor in bits 0-7 and 20-31.
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  const uevent = await readFile(`/sys/dev/block/${major}:${minor}/uevent`, 'utf8');
  const name = /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
  if (!name) throw new Error(`no block device ${major}:${minor}`);
  return name;
}

async function unmountDir(dir: string): Promise<void> {
  try {
    await run('umount', [dir]);
  } catch {
    // Still held open by a process: detached now, freed once it lets go.
    await run('umount', ['-l', dir]);
  }
}
