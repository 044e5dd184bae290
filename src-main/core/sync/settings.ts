// The sync settings a person changes in the window (excludes, bandwidth limit), written to their own
// layer of the config, which a damaged file never gets replaced in: they are told to fix it first.
import { z } from 'zod';
import { TabulaError } from '../../common/errors';
import { readJsonDocument, writeFileAtomic } from '../atomic-file';

export interface BackupSettings {
  excludes?: string[];
  bandwidthLimitKBps?: number;
}

export function saveBackupSettings(userConfigFile: string, s: BackupSettings) {
  updateUserConfig(userConfigFile, (c) => {
    const backup = (c.backup ?? {}) as Record<string, unknown>;
    if (s.excludes) backup.excludes = s.excludes;
    if (s.bandwidthLimitKBps !== undefined) backup.bandwidthLimitKBps = s.bandwidthLimitKBps;
    c.backup = backup;
  });
}

function updateUserConfig(file: string, patch: (c: Record<string, unknown>) => void) {
  const read = readJsonDocument(file, z.record(z.string(), z.unknown()));
  if (read.status === 'invalid') throw new TabulaError('invalid-argument', `${file} ${read.problem}; fix it before changing settings here.`);
  const value = read.status === 'ok' ? read.value : {};
  patch(value);
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}
