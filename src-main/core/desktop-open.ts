// Opens a file with the desktop's default app, or shows it in the file manager, for the window (which
// has no file access of its own). Callers pass only paths they own (a conflict's versions, the
// diagnostics folder); this module still refuses anything that is not a plain file or folder.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from '../common/errors';

export interface DesktopOpener {
  open(target: string, opts?: { reveal?: boolean }): Promise<void>;
}

/** Runs a tool detached, no shell; resolves once it started, rejects when it is missing. */
function launch(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { detached: true, stdio: 'ignore' });
    child.once('error', reject);
    child.once('spawn', () => {
      child.unref();
      resolve();
    });
  });
}

export function createDesktopOpener(env: NodeJS.ProcessEnv = process.env): DesktopOpener {
  return {
    async open(target, { reveal = false } = {}) {
      const st = fs.lstatSync(target, { throwIfNoEntry: false });
      if (!st || (!st.isFile() && !st.isDirectory())) {
        throw new TabulaError('invalid-argument', `${path.basename(target)} is no longer there (or is not a plain file).`);
      }
      const uri = 'file://' + target.split('/').map(encodeURIComponent).join('/');
      try {
        if (reveal && !st.isDirectory() && env.DBUS_SESSION_BUS_ADDRESS) {
          // The freedesktop way to "show in folder" with the file selected (Nautilus, Dolphin, Nemo…).
          await launch('gdbus', ['call', '--session', '--dest', 'org.freedesktop.FileManager1', '--object-path', '/org/freedesktop/FileManager1',
            '--method', 'org.freedesktop.FileManager1.ShowItems', `['${uri.replace(/'/g, '%27')}']`, '']);
          return;
        }
        await launch('xdg-open', [reveal && !st.isDirectory() ? path.dirname(target) : target]);
      } catch (err) {
        throw new TabulaError('tool-missing', `This computer has no way to open files from Tabula (${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'xdg-open is not installed' : (err as Error).message}).`);
      }
    },
  };
}
