// "Are there changes in the home that are not on the storage?": asked before every reimage. The home
// sync answers it (src-main/core/sync/service.ts: a dry run of the two-way sync, plus its queue).
import type { HomeSafetyReport } from '../../common/contract/helpdesk';

export interface HomeSafety {
  unsyncedChanges(): Promise<HomeSafetyReport>;
}
