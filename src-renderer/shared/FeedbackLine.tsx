import { useStore, type StoreApi } from 'zustand';
import type { ActionState } from './action';

/** The outcome of the last action taken here: a polite status when it went well, an alert when not. */
export function FeedbackLine<S extends ActionState>({ store, place, hideDetails = false }: { store: StoreApi<S>; place: string; hideDetails?: boolean }) {
  const f = useStore(store, (s) => s.feedback[place]);
  return (
    <div className="feedback" aria-live="polite" data-testid={`feedback-${place}`}>
      {f && (
        <div className={`banner ${f.kind === 'ok' ? 'ok' : 'error'}`} role={f.kind === 'ok' ? 'status' : 'alert'}>
          <p>{f.text}</p>
          {!hideDetails && f.details && f.details.length > 0 && (
            <ul className="details">
              {f.details.slice(0, 10).map((d) => (
                <li key={d}>{d}</li>
              ))}
              {f.details.length > 10 && <li>… and {f.details.length - 10} more</li>}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
