// No Secret Service in the session (a private D-Bus with no keyring on it): saving a secret fails
// with a message a person can act on, and the preferences file is left as it was.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths } from '../../src-main/core/paths';
import { createPrefsService } from '../../src-main/core/prefs/prefs-service';
import { createSandbox, type AgentSandbox } from '../fixtures/headless-agent';
import { startKeyring, type KeyringFixture } from '../fixtures/keyring';

describe('no keyring running', () => {
  let bus: KeyringFixture;
  let sb: AgentSandbox;
  beforeAll(async () => {
    bus = await startKeyring({ secretService: false });
    process.env.DBUS_SESSION_BUS_ADDRESS = bus.env.DBUS_SESSION_BUS_ADDRESS;
    sb = createSandbox();
  });
  afterAll(async () => {
    await sb?.dispose();
    await bus?.stop();
  });

  it('refuses to save a Wi-Fi password anywhere else, with a clear message', async () => {
    const env = { ...sb.env, DBUS_SESSION_BUS_ADDRESS: bus.env.DBUS_SESSION_BUS_ADDRESS, USER: 'ann' };
    const prefs = createPrefsService({ paths: resolvePaths(env), env });
    prefs.set('printers.default', { uri: 'ipp://office/ipp' });
    const before = fs.readFileSync(prefs.store.file, 'utf8');
    const err = await prefs.saveNetworkProfile({ kind: 'wifi', name: 'Home', ssid: 'Home', security: 'wpa2-personal', autoconnect: true }, 'a good password').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'keyring-unavailable', retryable: true });
    expect((err as Error).message).toMatch(/No keyring is running in this session.*never in a plain file/);
    expect(fs.readFileSync(prefs.store.file, 'utf8')).toBe(before);
  });
});
