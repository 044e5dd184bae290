// A window opened on http://127.0.0.1:PORT keeps the agent's token and retries that address while the
// agent restarts. In that gap another local user could listen on the port and collect the token from
// the window's next request. So before a window sends its token to an address it has not yet heard the
// agent on, it asks for proof: an HMAC, keyed by the token, of a fresh nonce and the port. Only the
// agent knows the token; the port in the proof stops a squatter relaying the question to the agent on
// another port. (The CLI and the tray reach the agent over a socket in a private folder instead.)

export const NONCE = /^[A-Za-z0-9_-]{22,128}$/;

export function newNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export async function agentProof(token: string, port: number, nonce: string): Promise<string> {
  const text = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', text.encode(token), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, text.encode(`tabula-agent\n${port}\n${nonce}`)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');
}
