// Picks the transport: the preload bridge inside Electron, HTTP + SSE with the token in headless mode.
import { createBridgeClient, createHttpClient, type TabulaBridge } from '../src-main/common/clients';
import type { ApiClient } from '../src-main/common/contract';

export function createClient(): ApiClient | null {
  const bridge = (window as unknown as { tabula?: TabulaBridge }).tabula;
  if (bridge) return createBridgeClient(bridge);
  // The agent prints http://127.0.0.1:PORT/#token=…; keep the token for reloads, out of the address bar.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem('tabula-token', fromHash);
    history.replaceState(null, '', location.pathname);
  }
  const token = fromHash ?? sessionStorage.getItem('tabula-token');
  return token ? createHttpClient({ baseUrl: location.origin, token, verifyAgent: true }) : null;
}
