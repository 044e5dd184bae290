// One way for every store to run an action: busy while it runs, then its outcome ("Settings saved.",
// or the agent's typed error, via toErrorInfo) kept under the place where it was taken, so the window
// shows it right there.
import type { StoreApi } from 'zustand/vanilla';
import { toErrorInfo, type ErrorInfo } from '../../src-main/common/errors';

export interface Feedback {
  kind: 'ok' | 'error';
  text: string;
  details?: string[];
  /** The error's code, when it is one (the window offers choices for some). */
  code?: ErrorInfo['code'];
}

export interface ActionState {
  /** The outcome of the last action, per place in the window ("backup", "printers", "reset"…). */
  feedback: Record<string, Feedback | undefined>;
  /** The place whose action is running now, or null. */
  busy: string | null;
}

export const initialActionState: ActionState = { feedback: {}, busy: null };

export function errorFeedback(err: unknown): Feedback {
  const info = toErrorInfo(err);
  return { kind: 'error', text: info.message, code: info.code, ...(info.details ? { details: info.details } : {}) };
}

/**
 * Returns run(place, fn): clears the place's feedback, runs fn, and records its result. fn returns
 * the sentence to show on success (or nothing). Resolves true when it succeeded.
 */
export function createActionRunner<S extends ActionState>(store: Pick<StoreApi<S>, 'getState' | 'setState'>) {
  const put = (place: string, feedback: Feedback | undefined) =>
    store.setState({ feedback: { ...store.getState().feedback, [place]: feedback } } as Partial<S>);
  const run = async (place: string, fn: () => Promise<string | void>): Promise<boolean> => {
    put(place, undefined);
    store.setState({ busy: place } as Partial<S>);
    try {
      const text = await fn();
      if (text) put(place, { kind: 'ok', text });
      return true;
    } catch (err) {
      put(place, errorFeedback(err));
      return false;
    } finally {
      if (store.getState().busy === place) store.setState({ busy: null } as Partial<S>);
    }
  };
  return Object.assign(run, { put });
}
