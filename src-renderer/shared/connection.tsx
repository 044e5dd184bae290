// While the window cannot reach the agent ("Not connected — retrying"), nothing that asks the agent can
// be done: the pages' actions are disabled, with the reason as a tooltip and for a screen reader, and
// come back by themselves when the window reconnects.
import { createContext, useContext } from 'react';

export const AgentConnected = createContext(true);

export const notConnectedId = 'not-connected-reason';
export const notConnectedReason = 'Not connected to the Tabula agent: actions wait until this window reaches it again.';

/** The reason to spread on a control that needs the agent (nothing while connected). */
export function useAgentReason(): { title?: string; 'aria-describedby'?: string } {
  return useContext(AgentConnected) ? {} : { title: notConnectedReason, 'aria-describedby': notConnectedId };
}

export const useAgentConnected = () => useContext(AgentConnected);
