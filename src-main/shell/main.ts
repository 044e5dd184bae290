// The Electron shell: one window and the tray, both clients of the agent that runs as the user's
// service (over $XDG_RUNTIME_DIR/tabula/agent.sock). Closing the window, quitting or crashing the
// tray stops nothing: the agent keeps syncing and queueing. Every window is sandboxed, isolated,
// without Node, and may not navigate or open other windows.
import { app, BrowserWindow, dialog, ipcMain, Notification, session } from 'electron';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { emptyNotifyMemory, nextNotification } from '../common/safety-line';
import { disconnectedTrayModel, trayModel } from '../common/tray-model';
import { agentSocketPath } from '../core/agent-socket';
import { contentSecurityPolicy } from '../core/http-server';
import { serveIpc } from '../core/ipc-adapter';
import { resolvePaths } from '../core/paths';
import { createRemoteAgent } from '../core/remote-agent';
import { createTray } from './tray';

const rendererIndex = path.join(__dirname, '..', 'renderer', 'index.html');
const iconDir = path.join(__dirname, '..', '..', 'assets', 'icons', 'png');

if (!app.requestSingleInstanceLock()) app.quit();

let window: BrowserWindow | null = null;

function openWindow() {
  if (window && !window.isDestroyed()) return window.show();
  window = new BrowserWindow({
    width: 560,
    height: 640,
    title: 'Tabula',
    icon: path.join(iconDir, 'tabula-256.png'),
    webPreferences: {
      preload: path.join(__dirname, 'preload.js'),
      sandbox: true,
      contextIsolation: true,
      nodeIntegration: false,
      webviewTag: false,
    },
  });
  window.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  window.webContents.on('will-navigate', (e) => e.preventDefault());
  void window.loadFile(rendererIndex);
}

app.on('second-instance', openWindow);
app.on('window-all-closed', () => {
  /* stay in the tray */
});

void app.whenReady().then(() => {
  process.umask(0o077); // what Tabula creates is the user's alone (as in the CLI)
  const agent = createRemoteAgent(agentSocketPath(resolvePaths()));
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [contentSecurityPolicy] } });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  const ownPage = 'file://' + rendererIndex;
  serveIpc(ipcMain, agent.router, agent.events, (e) => !!window && e.sender.id === window.webContents.id && e.senderFrame?.url.split('#')[0] === ownPage);

  const tray = createTray(iconDir, (action) => {
    if (action === 'open') openWindow();
    else if (action === 'backup-now') void agent.router.handle('backup.start', {});
    else if (action === 'cancel-backup') void agent.router.handle('backup.cancel', {});
    else if (action === 'resume') void agent.router.handle('backup.resume', {});
    else if (action === 'restart-to-update')
      // logind asks polkit; when the request fails (refused, no logind), the person is told, not left waiting.
      execFile('systemctl', ['reboot'], (err, _stdout, stderr) => {
        if (err) dialog.showErrorBox('The computer did not restart', `${String(stderr).trim().split('\n')[0] || err.message}\n\nThe update is staged: restart from the system menu to finish it.`);
      });
    else if (action === 'quit') app.exit(0); // the tray only: the agent is the user's service
  });
  // Desktop notifications: once a day while backups are stale, once per new decision (common/safety-line.ts).
  let notified = emptyNotifyMemory;
  const refresh = async () => {
    try {
      const status = await agent.status();
      tray.apply(trayModel(status));
      const next = nextNotification(status, notified, Date.now());
      notified = next.memory;
      if (next.notify && Notification.isSupported()) {
        const n = new Notification({ title: next.notify.title, body: next.notify.body });
        n.on('click', openWindow);
        n.show();
      }
    } catch (err) {
      tray.apply(disconnectedTrayModel(agent.connection().error?.message ?? (err instanceof Error ? err.message : String(err))));
    }
  };
  void refresh();
  agent.events.subscribe((e) => e.type !== 'backup-progress' && e.type !== 'image-progress' && void refresh());
  // Lost, or back (perhaps a restarted agent with new state): the page refetches everything by
  // reloading, and shows "Not connected" while the agent is away.
  let connectedBefore = false;
  agent.onChange((change) => {
    void refresh();
    const first = change === 'connected' && !connectedBefore;
    if (change === 'connected') connectedBefore = true;
    if (!first && window && !window.isDestroyed()) window.webContents.reload();
  });
  setInterval(() => void refresh(), 60_000); // "backed up N min ago" ages
  openWindow();
});
