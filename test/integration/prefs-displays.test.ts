// Display layouts against a real X server (Xorg, dummy driver) through xrandr: saved for a set of
// monitors on "laptop A", synced to "laptop B" where the same monitors hang on other connectors, and
// applied there with the same result. A monitor set with no saved layout is left alone.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DisplayProfile } from '../../src-main/common/prefs-schema';
import { resolvePaths } from '../../src-main/core/paths';
import { profileFromMonitors } from '../../src-main/common/display-profile';
import { createPrefsService, type PrefsService } from '../../src-main/core/prefs/prefs-service';
import { createSandbox, repoRoot, type AgentSandbox } from '../fixtures/headless-agent';
import { startXorgDummy, type XorgFixture } from '../fixtures/xorg-dummy';

const PANEL = { widthMm: 309, heightMm: 174 }; // the laptop's own screen
const BIG = { widthMm: 597, heightMm: 336 };
const SMALL = { widthMm: 376, heightMm: 301 };

describe('display layouts with Xorg and xrandr', () => {
  let xa: XorgFixture;
  let xb: XorgFixture;
  let a: AgentSandbox;
  let b: AgentSandbox;
  let prefsA: PrefsService;

  beforeAll(async () => {
    [xa, xb] = await Promise.all([startXorgDummy(), startXorgDummy()]);
    xa.plug('DUMMY0', PANEL);
    xa.plug('DUMMY1', BIG);
    xa.plug('DUMMY2', SMALL);
    // Laptop B: the same two monitors, on other connectors.
    xb.plug('DUMMY0', PANEL);
    xb.plug('DUMMY3', SMALL);
    xb.plug('DUMMY2', BIG);
    a = createSandbox();
    b = createSandbox();
    const envA = { ...a.env, ...xa.env };
    prefsA = createPrefsService({ paths: resolvePaths(envA), env: envA });
  });
  afterAll(async () => {
    await Promise.all([a?.dispose(), b?.dispose(), xa?.stop(), xb?.stop()]);
  });

  it('reads the connected monitors and their modes', async () => {
    const { displays } = await prefsA.state();
    expect(displays.session).toBe('x11');
    expect(displays.problem).toBeNull();
    expect(displays.monitors.map((m) => [m.connector, m.monitor])).toEqual([
      ['DUMMY0', 'size:309x174mm'],
      ['DUMMY1', 'size:597x336mm'],
      ['DUMMY2', 'size:376x301mm'],
    ]);
    expect(displays.monitors[1]!.modes).toContainEqual(expect.objectContaining({ width: 1920, height: 1080 }));
  });

  it('saves a layout for these monitors and applies it with xrandr', async () => {
    const { displays } = await prefsA.state();
    const byId = Object.fromEntries(displays.monitors.map((m) => [m.monitor, m]));
    const o = (monitor: string, width: number, height: number, x: number, primary: boolean) => ({
      monitor,
      label: byId[monitor]!.label,
      enabled: true,
      width,
      height,
      refresh: null,
      x,
      y: 0,
      scale: 1,
      rotation: 'normal' as const,
      primary,
    });
    // Big monitor in the middle and primary, small one on its left, the panel on the right.
    const desk: DisplayProfile = {
      name: 'Desk',
      outputs: [o('size:376x301mm', 1280, 1024, 0, false), o('size:597x336mm', 1920, 1080, 1280, true), o('size:309x174mm', 1600, 1200, 3200, false)],
    };
    await prefsA.saveDisplayProfile(desk);

    const dry = await prefsA.apply(true, ['displays']);
    expect(dry.items).toEqual([expect.objectContaining({ status: 'planned', action: expect.stringContaining('"Desk"') })]);
    expect(xa.layout().DUMMY1!.primary).toBe(false);

    const report = await prefsA.apply(false, ['displays']);
    expect(report.items).toEqual([expect.objectContaining({ status: 'applied' })]);
    expect(xa.layout()).toEqual({
      DUMMY0: { geometry: '1600x1200+3200+0', primary: false },
      DUMMY1: { geometry: '1920x1080+1280+0', primary: true },
      DUMMY2: { geometry: '1280x1024+0+0', primary: false },
    });
    expect((await prefsA.apply(false, ['displays'])).items[0]!.status).toBe('unchanged');
  });

  it('on hotplug, the agent applies the layout saved for the new set of monitors', async () => {
    const stop = prefsA.watchDisplays(100);
    try {
      await new Promise((r) => setTimeout(r, 400)); // the first look records the current set
      const { displays } = await prefsA.state();
      const now = { ...profileFromMonitors(displays.monitors), name: 'With projector' };
      const projector = { ...now.outputs[0]!, monitor: 'size:480x270mm', label: 'projector', width: 1280, height: 1024, x: 4800, y: 0, primary: false };
      await prefsA.saveDisplayProfile({ name: 'With projector', outputs: [...now.outputs, projector] });
      xa.plug('DUMMY3', { widthMm: 480, heightMm: 270 });
      await expect.poll(() => xa.layout().DUMMY3?.geometry, { timeout: 10_000 }).toBe('1280x1024+4800+0');
      expect(xa.layout().DUMMY1).toEqual({ geometry: '1920x1080+1280+0', primary: true });
    } finally {
      stop();
    }
  });

  it('roams: on laptop B the same monitors on other connectors get the same layout', () => {
    const src = path.join(a.env.XDG_CONFIG_HOME!, 'tabula') + '/';
    expect(spawnSync('rsync', ['-a', '--mkpath', src, path.join(b.env.XDG_CONFIG_HOME!, 'tabula')]).status).toBe(0);
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), 'prefs', 'apply', '--only', 'displays'], { env: { ...b.env, ...xb.env }, encoding: 'utf8' });
    expect(r.stdout).toMatch(/Applied +Display layout: "Desk"/);
    expect(r.status).toBe(0);
    expect(xb.layout()).toEqual({
      DUMMY0: { geometry: '1600x1200+3200+0', primary: false },
      DUMMY2: { geometry: '1920x1080+1280+0', primary: true },
      DUMMY3: { geometry: '1280x1024+0+0', primary: false },
    });
  });

  it('a monitor set with no saved layout is reported and left as it is', () => {
    xb.plug('DUMMY1', { widthMm: 700, heightMm: 400 });
    const before = xb.layout();
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), 'prefs', 'apply', '--only', 'displays'], { env: { ...b.env, ...xb.env }, encoding: 'utf8' });
    expect(r.stdout).toMatch(/Not applied +Display layout.*\n.*No saved layout matches these monitors \(.*700x400mm monitor on DUMMY1.*\); the layout was left as it is\./);
    expect(xb.layout()).toEqual(before);
  });

  it('with no display it says so', async () => {
    const env = { ...a.env };
    delete env.DISPLAY;
    const p = createPrefsService({ paths: resolvePaths(env), env });
    const report = await p.apply(false, ['displays']);
    expect(report.items[0]).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/no graphical session/) });
  });
});

describe('GNOME on Wayland: monitors.xml', () => {
  it('writes the saved layout into ~/.config/monitors.xml with this laptop’s connectors (fake /sys/class/drm tree)', async () => {
    const fs = await import('node:fs');
    const sb = createSandbox();
    try {
      // A sysfs-shaped tree under TABULA_ROOT: the one part here that is a stand-in (no DRM device).
      const edid = Buffer.alloc(128);
      Buffer.from([0, 255, 255, 255, 255, 255, 255, 0]).copy(edid, 0);
      edid.writeUInt16BE((4 << 10) | (5 << 5) | 12, 8); // "DEL"
      edid.writeUInt16LE(0xa0f1, 10);
      edid.writeUInt32LE(777, 12);
      const drm = path.join(sb.env.TABULA_ROOT!, 'sys/class/drm/card0-DP-4');
      fs.mkdirSync(drm, { recursive: true });
      fs.writeFileSync(path.join(drm, 'status'), 'connected\n');
      fs.writeFileSync(path.join(drm, 'edid'), edid);
      const env: NodeJS.ProcessEnv = { ...sb.env, XDG_SESSION_TYPE: 'wayland', XDG_CURRENT_DESKTOP: 'ubuntu:GNOME' };
      const prefs = createPrefsService({ paths: resolvePaths(env), env });
      const { displays } = await prefs.state();
      expect(displays.session).toBe('wayland-gnome');
      const monitor = displays.monitors[0]!.monitor;
      expect(monitor).toMatch(/^edid:/);
      await prefs.saveDisplayProfile({
        name: 'Docked',
        outputs: [{ monitor, enabled: true, width: 2560, height: 1440, refresh: 59.95, x: 0, y: 0, scale: 1.5, rotation: 'normal', primary: true }],
      });
      const report = await prefs.apply(false, ['displays']);
      expect(report.items[0]).toMatchObject({ status: 'applied' });
      const xml = fs.readFileSync(path.join(env.XDG_CONFIG_HOME!, 'monitors.xml'), 'utf8');
      expect(xml).toContain('<connector>DP-4</connector><vendor>DEL</vendor>');
      expect(xml).toContain('<scale>1.5</scale><primary>yes</primary>');
      expect(xml).toContain('<width>2560</width><height>1440</height><rate>59.95</rate>');
    } finally {
      await sb.dispose();
    }
  });
});
