// The one line at the top: am I safe? Icon, sentence, one action. Computed by the pure safetyLine()
// (src-main/common/safety-line.ts), the same function that picks the tray icon.
import { useStore } from 'zustand';
import { safetyLine, type SafetyActionId } from '../../src-main/common/safety-line';
import { useNow } from '../shared/use-now';
import { SafetyIcon } from './SafetyIcon';
import type { Stores } from './stores';

export function SafetyLine({ stores, onAction }: { stores: Stores; onAction: (id: SafetyActionId) => void }) {
  const agent = useStore(stores.agent, (s) => s.status);
  const connected = useStore(stores.agent, (s) => s.connected);
  const backup = useStore(stores.backup, (s) => s.status);
  const update = useStore(stores.imageUpdate, (s) => s.status);
  const busy = useStore(stores.backup, (s) => s.busy);
  // The reset (a fleet reimage may wait for a backup): from the status, then kept current by events.
  const reimage = useStore(stores.helpdesk, (s) => s.reimage);
  const now = useNow(15_000);
  if (!agent || !backup || !update) {
    return (
      <section className="safety tone-info" aria-label="Backup safety" data-testid="safety">
        <div className="safety-text" role="status" aria-live="polite" data-testid="safety-line">
          <p className="sentence">{connected ? 'Loading…' : 'Connecting to Tabula…'}</p>
        </div>
      </section>
    );
  }
  const line = safetyLine({ ...agent, backup, imageUpdate: update, reimage: reimage ?? agent.reimage }, now, connected);
  return (
    <section className={`safety tone-${line.tone}`} aria-label="Backup safety" data-testid="safety" data-tone={line.tone} data-icon={line.icon}>
      <SafetyIcon icon={line.icon} />
      <div className="safety-text" role="status" aria-live="polite" aria-atomic="true" data-testid="safety-line">
        <p className="sentence" data-testid="safety-sentence">
          {line.sentence}
        </p>
        {line.detail && (
          <p className="detail" data-testid="safety-detail">
            {line.detail}
          </p>
        )}
      </div>
      {line.action && (
        <button type="button" className="safety-action" disabled={busy === 'backup'} onClick={() => onAction(line.action!.id)} data-testid="safety-action">
          {line.action.label}
        </button>
      )}
    </section>
  );
}
