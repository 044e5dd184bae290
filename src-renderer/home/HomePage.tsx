// Home: the backup (what it is doing, the last run, the refusal with its choice), conflicts, restore
// and the sync settings.
import type { Stores } from '../app/stores';
import { BackupPanel } from './BackupPanel';
import { ConflictsInbox } from './ConflictsInbox';
import { RestoreBox } from './RestoreBox';
import { SyncSettings } from './SyncSettings';

export function HomePage({ stores }: { stores: Stores }) {
  return (
    <>
      <ConflictsInbox store={stores.backup} />
      <BackupPanel store={stores.backup} />
      <RestoreBox store={stores.backup} />
      <SyncSettings store={stores.backup} />
    </>
  );
}
